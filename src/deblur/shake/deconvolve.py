"""Non-blind deconvolution of a whole photo with a known kernel: a hyper-Laplacian prior.

Krishnan and Fergus (NIPS 2009): min_x lambda/2 ||k * x - y||^2 + sum |grad x|^alpha, alpha < 1,
by half-quadratic splitting. For a rising beta: w = argmin |w|^alpha + beta/2 (w - grad x)^2 per
pixel (read from a table), then x from an FFT solve. Each colour channel is solved over the whole
photo at once (no tile seams), padded by the kernel's size and edge-tapered so that the FFT's
wrap-around never reaches the picture; one channel at a time keeps memory at about a dozen
float32 copies of one channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deblur.shake.fourier import edgetaper, fast_length, gradient_otfs, gradients, psf2otf


@dataclass(frozen=True)
class DeconvolutionSettings:
    data_weight: float | None = None  # lambda; None: from the photo's noise level (see noise_weight)
    alpha: float = 0.8  # exponent of the gradient prior (2/3 to 0.8 suit natural images)
    beta_start: float = 1.0
    beta_rate: float = 2 * math.sqrt(2)
    beta_max: float = 256.0


# lambda = REFERENCE_WEIGHT up to REFERENCE_NOISE, then scaled by (REFERENCE_NOISE / sigma)^2 (the
# data term's precision). 3000 measured best on Levin et al.'s set (noise estimate 0.3%), where
# errors of the kernel, not noise, set the limit: a cleaner photo gets no higher weight. The floor
# only guards against absurd noise estimates: at sigma 0.02-0.04 a floor of 200 cost 2 dB with the
# true kernel on training photos (bench/shake_guards.py --weights).
REFERENCE_WEIGHT, REFERENCE_NOISE = 3000.0, 0.005
WEIGHT_RANGE = (20.0, REFERENCE_WEIGHT)
GRADIENT_SCALE = 0.05  # typical gradient size of a photo in [0, 1]: the Wiener filter's signal level


def noise_sigma(gray: np.ndarray) -> float:
    """Gaussian noise level of a gray image in [0, 1]: the MAD of its finest diagonal wavelet band."""
    g = np.asarray(gray, np.float64)
    h, w = g.shape[0] // 2 * 2, g.shape[1] // 2 * 2
    g = g[:h, :w]
    band = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2  # Haar HH
    return float(np.median(np.abs(band)) / 0.6745)


def noise_weight(sigma: float) -> float:
    """The data weight lambda for a noise level: the reference, scaled by (reference / sigma)^2."""
    weight = REFERENCE_WEIGHT * (REFERENCE_NOISE / max(sigma, 1e-4)) ** 2
    return float(min(max(weight, WEIGHT_RANGE[0]), WEIGHT_RANGE[1]))


class _Shrinkage:
    """w = argmin |w|^alpha + beta/2 (w - v)^2, tabulated over v for one beta (Krishnan and Fergus' LUT)."""

    RANGE, STEPS = 1.0, 20001

    def __init__(self, alpha: float, beta: float, device, dtype=torch.float32):
        v = np.linspace(0, self.RANGE, self.STEPS // 2 + 1)
        w = v.copy()
        for _ in range(20):  # Newton on the non-zero branch, kept within [0, v]
            safe = np.maximum(w, 1e-9)
            grad = alpha * safe ** (alpha - 1) + beta * (w - v)
            hess = alpha * (alpha - 1) * safe ** (alpha - 2) + beta
            w = np.clip(w - grad / np.where(np.abs(hess) > 1e-12, hess, 1e-12), 0, v)
        better = w**alpha + beta / 2 * (w - v) ** 2 < beta / 2 * v**2
        w = np.where(better, w, 0.0)
        self.table = torch.from_numpy(w).to(device=device, dtype=dtype)
        self.scale = (self.STEPS // 2) / self.RANGE

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        position = (v.abs() * self.scale).clamp_(max=self.table.numel() - 1.001)
        index = position.long()
        frac = position - index
        low, high = self.table[index], self.table[index + 1]
        out = torch.lerp(low, high, frac)
        beyond = v.abs() > self.RANGE  # past the table w ~ v (the prior's pull is negligible)
        out = torch.where(beyond, v.abs(), out)
        return out.copysign(v)


def deconvolve(pixels: np.ndarray, kernel: np.ndarray, settings: DeconvolutionSettings = DeconvolutionSettings(),
               device: str | torch.device = "cpu", on_channel=None) -> np.ndarray:
    """Deconvolve H x W x C float32 pixels in [0, 1] with `kernel`; returns the same shape, unclipped."""
    device = torch.device(device)
    weight = settings.data_weight
    if weight is None:
        weight = noise_weight(noise_sigma(pixels.mean(axis=2)))
    kernel_t = torch.from_numpy(np.asarray(kernel, np.float32)).to(device)
    out = np.empty_like(pixels, dtype=np.float32)
    shrinkers = None
    for channel in range(pixels.shape[2]):
        plane = torch.from_numpy(np.ascontiguousarray(pixels[..., channel], np.float32)).to(device)
        if shrinkers is None:
            shrinkers = [_Shrinkage(settings.alpha, beta, device) for beta in _betas(settings)]
        out[..., channel] = _deconvolve_plane(plane, kernel_t, weight, shrinkers, _betas(settings)).cpu().numpy()
        if on_channel:
            on_channel(channel + 1, pixels.shape[2])
    return out


def _betas(settings: DeconvolutionSettings) -> list[float]:
    betas, beta = [], settings.beta_start
    while beta < settings.beta_max:
        betas.append(beta)
        beta *= settings.beta_rate
    return betas


def pad_for_fft(plane: torch.Tensor, kernel: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Replicate-pad by at least the kernel size to FFT-friendly sizes and taper the border so it wraps.
    A plane (H, W) with a kernel (K, K), or a batch (N, 1, H, W) with one kernel each (N, K, K)."""
    size = kernel.shape[-1]
    height, width = plane.shape[-2:]
    full_h, full_w = fast_length(height + 2 * size), fast_length(width + 2 * size)
    top, left = (full_h - height) // 2, (full_w - width) // 2
    batch = plane if plane.dim() == 4 else plane[None, None]
    padded = F.pad(batch, (left, full_w - width - left, top, full_h - height - top), mode="replicate")
    if plane.dim() == 4:
        return edgetaper(padded, kernel[:, None], ramp=min(top, left)), top, left
    return edgetaper(padded[0, 0], kernel, ramp=min(top, left)), top, left


def _deconvolve_plane(plane: torch.Tensor, kernel: torch.Tensor, weight: float, shrinkers, betas) -> torch.Tensor:
    height, width = plane.shape
    y, top, left = pad_for_fft(plane, kernel)
    shape = y.shape
    otf = psf2otf(kernel, shape)
    dx, dy = gradient_otfs(shape, y.dtype, y.device)
    data_top = weight * otf.conj() * torch.fft.rfft2(y)
    data_bottom = weight * otf.abs() ** 2
    del otf
    grad_bottom = dx.abs() ** 2 + dy.abs() ** 2
    x = y
    for beta, shrink in zip(betas, shrinkers):
        gx, gy = gradients(x)
        top_f = data_top + beta * (dx.conj() * torch.fft.rfft2(shrink(gx)) + dy.conj() * torch.fft.rfft2(shrink(gy)))
        del gx, gy
        x = torch.fft.irfft2(top_f / (data_bottom + beta * grad_bottom), s=shape)
        del top_f
    return x[top:top + height, left:left + width]


def wiener(pixels: np.ndarray, kernel: np.ndarray, sigma: float | None = None,
           gradient_scale: float = GRADIENT_SCALE) -> np.ndarray:
    """The Wiener filter for natural images (power spectrum ~ 1/|frequency|^2) per channel, padded as
    `deconvolve` pads: conj(K) Y / (|K|^2 + (sigma / gradient_scale)^2 |D|^2). A linear baseline;
    sigma is the noise level (default: estimated from the photo)."""
    sigma = noise_sigma(pixels.mean(axis=2)) if sigma is None else sigma
    weight = (max(sigma, 1e-4) / gradient_scale) ** 2
    kernel_t = torch.from_numpy(np.asarray(kernel, np.float32))
    out = np.empty_like(pixels, dtype=np.float32)
    for channel in range(pixels.shape[2]):
        plane = torch.from_numpy(np.ascontiguousarray(pixels[..., channel], np.float32))
        y, top, left = pad_for_fft(plane, kernel_t)
        otf = psf2otf(kernel_t, y.shape)
        dx, dy = gradient_otfs(y.shape, y.dtype)
        x = torch.fft.irfft2(otf.conj() * torch.fft.rfft2(y) / (otf.abs() ** 2 + weight * (dx.abs() ** 2 + dy.abs() ** 2)),
                             s=y.shape)
        out[..., channel] = x[top:top + plane.shape[0], left:left + plane.shape[1]].numpy()
    return out
