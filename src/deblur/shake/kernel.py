"""Blind estimation of a camera-shake kernel from a gray region: coarse-to-fine, L0 gradient prior.

After Xu et al. (2013) and Pan et al. (2014), in the form analysed by Anger, Facciolo and
Delbracio (IPOL 2019, "Blind image deblurring using the L0 gradient prior"). At each scale of a
pyramid, from coarse to fine, alternate:
- kernel step: min_k ||grad(u) * k - grad(v)||^2 + gamma ||k||^2, either over a K x K support
  (conjugate gradients on the normal equations, whose operator is the gradients' autocorrelation)
  or over the whole image in closed form by FFT and then cropped to K x K (as the IPOL code does);
  then clip negatives, drop values under a share of the peak and isolated blobs, and centre it;
- latent step: min_u ||k * u - v||^2 + lambda ||grad(u)||_0 by half-quadratic splitting (FFT solves),
  with lambda decaying so that finer edges join as the kernel sharpens.
The L0 prior keeps only strong edges in u, which is what makes the kernel step well posed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from deblur.shake.fourier import edgetaper, fast_length, gradient_otfs, gradients, psf2otf

DTYPE = torch.float64  # the region is small; double precision keeps the kernel solve stable


@dataclass(frozen=True)
class EstimationSettings:
    l0_weight: float = 4e-3  # lambda at the coarsest scale
    l0_decay: float = 1 / 1.1  # lambda *= this after every iteration...
    l0_min: float = 1e-4  # ...down to this
    kernel_weight: float = 100.0  # gamma: Tikhonov weight of the kernel step
    iterations: int = 5  # kernel/latent alternations per scale
    scale_factor: float = 0.5 ** 0.5  # pyramid step
    threshold: float = 0.05  # kernel values under this share of the peak are dropped
    isolated_share: float = 0.1  # connected blobs holding less than this share of the mass are dropped
    solver: str = "support"  # the kernel step: "support" (CG on K x K) or "fourier" (closed form, cropped)
    cg_iterations: int = 20


@dataclass
class KernelEstimate:
    kernel: np.ndarray  # (K, K) float64, sums to 1
    latent: np.ndarray  # the L0 latent image of the region at the finest scale
    settings: EstimationSettings
    size: int


def estimate_kernel(region: np.ndarray, size: int, settings: EstimationSettings = EstimationSettings()) -> KernelEstimate:
    """The blur kernel (odd `size` x `size`) of a gray region (H x W floats), coarse to fine."""
    if size < 3 or size % 2 == 0:
        raise ValueError("the kernel size must be odd and at least 3")
    v = torch.from_numpy(np.asarray(region, np.float64))
    v = (v - v.min()) / (v.max() - v.min()).clamp_min(1e-6)
    v = edgetaper(v, torch.full((size, size), 1.0 / size**2, dtype=DTYPE))
    pyramid = _pyramid(v, size, settings.scale_factor)
    lam = settings.l0_weight
    u = pyramid[-1][0]
    kernel = None
    for blurry, ks in reversed(pyramid):
        if u.shape != blurry.shape:
            u = F.interpolate(u[None, None], size=blurry.shape, mode="bicubic", align_corners=False)[0, 0]
        solver = _LatentSolver(blurry)
        for _ in range(settings.iterations):
            kernel = _kernel_step(u, blurry, ks, settings, kernel)
            u = solver.solve(kernel, lam)
            lam = max(lam * settings.l0_decay, settings.l0_min)
    return KernelEstimate(kernel.numpy(), u.numpy(), settings, size)


def fit_kernel(sharp: np.ndarray, blurry: np.ndarray, size: int,
               settings: EstimationSettings = EstimationSettings()) -> np.ndarray:
    """The one kernel (odd `size`) that best blurs a gray sharp image into its blurry one: the kernel
    step with the true latent image. Not blind: for benchmarks, to ask whether any single kernel
    explains a pair (real video blur often is not one kernel)."""
    u, v = (torch.from_numpy(np.asarray(image, np.float64)) for image in (sharp, blurry))
    window = torch.full((size, size), 1.0 / size**2, dtype=DTYPE)
    return _kernel_step(edgetaper(u, window), edgetaper(v, window), size, settings, None).numpy()


def _pyramid(v: torch.Tensor, size: int, factor: float) -> list[tuple[torch.Tensor, int]]:
    """[(image, kernel size)] from fine to coarse, down to a kernel of 3 px."""
    levels = [(v, size)]
    image, ks = v, size
    while True:
        smaller = int(ks * factor)
        smaller += (smaller + 1) % 2
        if smaller < 3 or smaller >= ks:
            break
        height, width = (max(8, int(np.ceil(n * factor))) for n in image.shape)
        image = F.interpolate(image[None, None], size=(height, width), mode="bilinear", antialias=True,
                              align_corners=False)[0, 0]
        ks = smaller
        levels.append((image, ks))
    return levels


class _LatentSolver:
    """min_u ||k * u - v||^2 + lambda ||grad u||_0 for one blurry image, by half-quadratic splitting."""

    BETA_MAX = 1e5
    BETA_RATE = 2.0

    def __init__(self, blurry: torch.Tensor):
        self.blurry = blurry
        self.shape = blurry.shape
        self.blurry_f = torch.fft.rfft2(blurry)
        self.dx, self.dy = gradient_otfs(self.shape, blurry.dtype)
        self.grad_energy = self.dx.abs() ** 2 + self.dy.abs() ** 2

    def solve(self, kernel: torch.Tensor, lam: float) -> torch.Tensor:
        otf = psf2otf(kernel, self.shape)
        numerator = otf.conj() * self.blurry_f
        kernel_energy = otf.abs() ** 2
        u, beta = self.blurry, 2 * lam
        while beta < self.BETA_MAX:
            gx, gy = gradients(u)
            keep = (gx**2 + gy**2) >= lam / beta  # the L0 step: small gradients become exactly 0
            gx, gy = gx * keep, gy * keep
            top = numerator + beta * (self.dx.conj() * torch.fft.rfft2(gx) + self.dy.conj() * torch.fft.rfft2(gy))
            u = torch.fft.irfft2(top / (kernel_energy + beta * self.grad_energy), s=self.shape)
            beta *= self.BETA_RATE
        return u


def _kernel_step(u: torch.Tensor, v: torch.Tensor, ks: int, settings: EstimationSettings,
                 previous: torch.Tensor | None) -> torch.Tensor:
    """Least-squares kernel (ks x ks) from the gradients of latent u and blurry v, cleaned."""
    ux, uy = (torch.fft.rfft2(g) for g in gradients(u))
    vx, vy = (torch.fft.rfft2(g) for g in gradients(v))
    if settings.solver == "fourier":
        k = _fourier_kernel(ux, uy, vx, vy, u.shape, ks, settings.kernel_weight)
    else:
        k = _support_kernel(ux, uy, vx, vy, u.shape, ks, settings, previous)
    return torch.from_numpy(clean_kernel(k.numpy(), settings.threshold, settings.isolated_share))


def _fourier_kernel(ux, uy, vx, vy, shape, ks: int, gamma: float) -> torch.Tensor:
    """The unconstrained minimiser over the whole image, its central ks x ks cropped."""
    whole = torch.fft.irfft2((ux.conj() * vx + uy.conj() * vy) / (ux.abs() ** 2 + uy.abs() ** 2 + gamma), s=shape)
    r = ks // 2
    rows = torch.arange(-r, r + 1) % shape[0]
    cols = torch.arange(-r, r + 1) % shape[1]
    return whole[rows[:, None], cols[None, :]]


def _support_kernel(ux, uy, vx, vy, shape, ks: int, settings: EstimationSettings,
                    previous: torch.Tensor | None) -> torch.Tensor:
    """The minimiser over a ks x ks support, by conjugate gradients on the normal equations."""
    autocorrelation = torch.fft.irfft2(ux.abs() ** 2 + uy.abs() ** 2, s=shape)
    cross = torch.fft.irfft2(ux.conj() * vx + uy.conj() * vy, s=shape)
    r = ks // 2
    lags = torch.arange(-(ks - 1), ks) % torch.tensor(shape)[:, None]
    operator = autocorrelation[lags[0][:, None], lags[1][None, :]]  # (2ks-1)^2, symmetric
    offsets = torch.arange(-r, r + 1) % torch.tensor(shape)[:, None]
    rhs = cross[offsets[0][:, None], offsets[1][None, :]]
    # apply: (A k)[p] = sum_q R[p - q] k[q] + gamma k[p] on the support, as one small linear
    # convolution done by FFT (a direct conv2d of these sizes is 10x slower in float64)
    n = fast_length(3 * ks - 2)
    operator_f = torch.fft.rfft2(operator, s=(n, n))

    def apply(k):
        full = torch.fft.irfft2(torch.fft.rfft2(k, s=(n, n)) * operator_f, s=(n, n))
        return full[ks - 1:2 * ks - 1, ks - 1:2 * ks - 1] + settings.kernel_weight * k

    k = previous.clone() if previous is not None and previous.shape[0] == ks else torch.full((ks, ks), 1.0 / ks**2, dtype=DTYPE)
    residual = rhs - apply(k)
    direction = residual.clone()
    rs = (residual * residual).sum()
    for _ in range(settings.cg_iterations):
        step = apply(direction)
        alpha = rs / (direction * step).sum().clamp_min(1e-30)
        k = k + alpha * direction
        residual = residual - alpha * step
        rs_new = (residual * residual).sum()
        if rs_new < 1e-24:
            break
        direction = residual + (rs_new / rs) * direction
        rs = rs_new
    return k


def clean_kernel(kernel: np.ndarray, threshold: float = 0.05, isolated_share: float = 0.1) -> np.ndarray:
    """Non-negative, small values and isolated blobs removed, centred on its centroid, summing to 1."""
    import cv2

    k = np.maximum(kernel, 0)
    if k.sum() <= 0:
        return delta(k.shape[0])
    k[k < k.max() * threshold] = 0
    k = k / k.sum()
    count, labels = cv2.connectedComponents((k > 0).astype(np.uint8), connectivity=8)
    mass = np.bincount(labels.ravel(), weights=k.ravel(), minlength=count)
    keep = mass >= isolated_share
    keep[0] = False
    if not keep.any():
        keep[np.argmax(np.where(np.arange(count) > 0, mass, -1))] = True
    k = np.where(keep[labels], k, 0)
    return centre(k / k.sum())


def centre(kernel: np.ndarray) -> np.ndarray:
    """Shift a kernel by whole pixels so that its centroid sits on the centre pixel."""
    size = kernel.shape[0]
    ys, xs = np.indices(kernel.shape)
    total = kernel.sum()
    dy = size // 2 - int(round((kernel * ys).sum() / total))
    dx = size // 2 - int(round((kernel * xs).sum() / total))
    out = np.zeros_like(kernel)
    src_y, dst_y = slice(max(0, -dy), size - max(0, dy)), slice(max(0, dy), size - max(0, -dy))
    src_x, dst_x = slice(max(0, -dx), size - max(0, dx)), slice(max(0, dx), size - max(0, -dx))
    out[dst_y, dst_x] = kernel[src_y, src_x]
    return out


def delta(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def with_settings(settings: EstimationSettings, **changes) -> EstimationSettings:
    return replace(settings, **changes)
