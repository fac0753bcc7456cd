"""A learned non-blind deconvolution: unrolled half-quadratic stages with learned filters and shrinkage.

After Schmidt and Roth's shrinkage fields (CVPR 2014) and Kruse, Rother and Schmidt's Fourier
deconvolution network (ICCV 2017). The hyper-Laplacian (deconvolve.py) alternates
z_i = shrink(f_i * x) and x = argmin ||k * x - y||^2 + omega sum_i ||f_i * x - z_i||^2 with two
fixed gradient filters, one fixed shrinkage and omega rising on a fixed schedule. Here each stage
learns its own filters (beside the two gradients, kept so that the FFT solve is never singular),
one odd piecewise-linear shrinkage per filter (two, for a clean and a noisy photo, blended by the
photo's noise level: a clean photo wants its fine detail kept, a noisy one shrunk), and omega as a
function of the noise level. A stage
is still one FFT solve plus small convolutions, so a whole photo runs as the hyper-Laplacian does;
initialised as that hyper-Laplacian (the extra filters start near zero), training starts from it.

Planes are (N, 1, H, W), already padded and edge-tapered to an FFT size (deconvolve.pad_for_fft):
every operator here is circular.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deblur.shake.deconvolve import REFERENCE_NOISE, REFERENCE_WEIGHT, _Shrinkage, noise_sigma, pad_for_fft
from deblur.shake.fourier import psf2otf

NOISE_FLOOR = 1e-3  # noise estimates below this are taken as this (the estimator's own error)
SIGMA_CENTRE = 0.01  # omega's log-linear model is centred here
MAX_GAIN = 1.5  # a shrinkage function may amplify a filter response at most this much
CLEAN_NOISE, NOISY_NOISE = 0.003, 0.03  # the noise levels of the two shrinkage tables (8-bit quantisation, high ISO)
FILTER_SCALE = 0.03  # the learned filters' starting size: as good as none (0.1 would cost 0.1 dB at the start)


def noise_blend(sigma: torch.Tensor) -> torch.Tensor:
    """How far (0 to 1) a noise level is from a clean photo's (CLEAN_NOISE) to a noisy one's (NOISY_NOISE),
    linear in log sigma: the share of the noisy shrinkage tables."""
    t = (torch.log(sigma) - math.log(CLEAN_NOISE)) / (math.log(NOISY_NOISE) - math.log(CLEAN_NOISE))
    return t.clamp(0, 1)


def _dct_filters(count: int, size: int) -> torch.Tensor:
    """The `count` lowest-frequency 2-D DCT basis filters of `size` x `size` after the constant one, unit norm."""
    n = torch.arange(size, dtype=torch.float64)
    basis = [torch.cos(math.pi * (n + 0.5) * k / size) for k in range(size)]
    pairs = sorted(((u, v) for u in range(size) for v in range(size) if (u, v) != (0, 0)),
                   key=lambda uv: (uv[0] + uv[1], uv))
    filters = torch.stack([basis[u][:, None] * basis[v][None, :] for u, v in pairs[:count]])
    return (filters / filters.flatten(1).norm(dim=1)[:, None, None]).float()


class _OddPiecewiseLinear(torch.autograd.Function):
    """y = sign(v) phi_nm(|v|) for responses v (N, M, H, W), phi_nm linear between the knots of row
    (n, m) of `table` (N, M, G) spread over [0, reach] (each plane its own, for its noise level), and
    continued with slope 1 beyond.

    Written out because autograd's gather and scatter for a table lookup cost three times the
    convolutions on the CPU; here the table's gradient is two bincounts."""

    @staticmethod
    def forward(ctx, responses, table, reach: float):
        samples, filters, knots = table.shape
        scale = (knots - 1) / reach
        magnitude = responses.abs()
        position = magnitude * scale
        beyond = position >= knots - 1
        index = position.long().clamp_(max=knots - 2)  # beyond: the last segment, at its end (frac 1)
        frac = torch.where(beyond, 1.0, position - index)
        rows = torch.arange(samples * filters, device=responses.device).view(samples, filters, 1, 1)
        index += rows.expand(responses.shape[0], filters, 1, 1) * knots
        flat, at = table.flatten(), index.flatten()
        low = torch.index_select(flat, 0, at).view_as(index)
        high = torch.index_select(flat, 0, at + 1).view_as(index)
        slope = torch.where(beyond, 1.0, (high - low) * scale)
        out = torch.where(beyond, high + (magnitude - reach), torch.lerp(low, high, frac)).copysign(responses)
        ctx.save_for_backward(index, frac, slope, responses.signbit())
        ctx.table_shape = table.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        index, frac, slope, negative = ctx.saved_tensors
        grad_responses = grad * slope
        signed = torch.where(negative, -grad, grad)
        size = ctx.table_shape.numel()
        flat_index = index.flatten()
        grad_table = (torch.bincount(flat_index, (signed * (1 - frac)).flatten(), size)
                      + torch.bincount(flat_index + 1, (signed * frac).flatten(), size))
        return grad_responses, grad_table.view(ctx.table_shape).to(grad.dtype), None


def _shrink_for_inference(responses: torch.Tensor, table: torch.Tensor, reach: float) -> torch.Tensor:
    """_OddPiecewiseLinear's forward for one plane's table (M, G) without what its backward needs: each
    segment's intercept and slope looked up by 32-bit index (the last continues with slope 1)."""
    filters, knots = table.shape
    scale = (knots - 1) / reach
    slopes = torch.cat([(table[:, 1:] - table[:, :-1]) * scale, torch.ones_like(table[:, :1])], 1)
    starts = torch.arange(knots, dtype=table.dtype, device=table.device) / scale
    intercepts = (table - slopes * starts).flatten()
    slopes = slopes.flatten()
    magnitude = responses.abs()
    index = (magnitude * scale).to(torch.int32).clamp_(max=knots - 1)
    index += (torch.arange(filters, device=responses.device, dtype=torch.int32) * knots)[None, :, None, None]
    flat = index.flatten()  # index_select on a flat index: twice as fast as advanced indexing here
    slope = torch.index_select(slopes, 0, flat).view_as(magnitude)
    return slope.mul_(magnitude).add_(torch.index_select(intercepts, 0, flat).view_as(magnitude)).copysign_(responses)


class DeconvolutionStage(nn.Module):
    """One half-quadratic step: shrink the filter responses of x, then solve for x by FFT."""

    def __init__(self, filters: int, size: int, knots: int, reach: float, beta: float, alpha: float = 0.8):
        super().__init__()
        self.size, self.reach = size, reach
        # the fixed gradients (as deconvolve.gradients) keep the FFT solve's denominator away from zero
        gradients = torch.zeros(2, 1, size, size)
        centre = size // 2
        gradients[0, 0, centre, centre], gradients[0, 0, centre, centre + 1] = -1, 1
        gradients[1, 0, centre, centre], gradients[1, 0, centre + 1, centre] = -1, 1
        self.register_buffer("gradients", gradients)
        # learned filters as direction x scale, so that Adam changes their size multiplicatively
        self.filter_directions = nn.Parameter(_dct_filters(filters, size)[:, None])
        self.filter_log_scales = nn.Parameter(torch.full((filters,), math.log(FILTER_SCALE)))
        # omega = beta / lambda(sigma) of the hyper-Laplacian at this stage's beta: log-linear in log sigma
        lam_centre = REFERENCE_WEIGHT * (REFERENCE_NOISE / SIGMA_CENTRE) ** 2
        self.log_weight = nn.Parameter(torch.tensor(math.log(beta / lam_centre)))
        self.noise_slope = nn.Parameter(torch.tensor(2.0))
        # shrinkage phi(v) = v * gain(v), gain = MAX_GAIN * sigmoid(raw) at the knots: never a sign flip,
        # never more than MAX_GAIN times the response (unconstrained tables diverged in training)
        grid = np.linspace(0, reach, knots)
        hyper_laplacian = _Shrinkage(alpha, beta, "cpu", torch.float64)(torch.from_numpy(grid)).numpy()
        gain = np.divide(hyper_laplacian, grid, out=np.zeros_like(grid), where=grid > 0)
        gain[0] = gain[1]
        gain = np.clip(gain / MAX_GAIN, 0.01, 0.99)
        raw = torch.from_numpy(np.log(gain / (1 - gain))).float()
        self.register_buffer("knots", torch.from_numpy(grid).float())
        # per filter, at the knots, for a clean photo and for a noisy one (blended by noise_blend)
        self.shrinkage_gains = nn.Parameter(raw.repeat(2, 2 + filters, 1))

    def all_filters(self) -> torch.Tensor:
        # zero mean (flat areas give no response, as for the gradients), unit norm, then scaled
        directions = self.filter_directions - self.filter_directions.mean((-2, -1), keepdim=True)
        directions = directions / directions.flatten(1).norm(dim=1).clamp_min(1e-8)[:, None, None, None]
        learned = directions * self.filter_log_scales.exp()[:, None, None, None]
        return torch.cat([self.gradients, learned])

    def shrinkage_table(self, sigma: torch.Tensor) -> torch.Tensor:
        """phi at the knots, per plane and filter (N, M, G), for noise levels sigma (N,)."""
        gains = MAX_GAIN * torch.sigmoid(self.shrinkage_gains)
        t = noise_blend(sigma)[:, None, None]
        return self.knots * ((1 - t) * gains[0] + t * gains[1])

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """omega per plane (N,) for noise levels sigma (N,)."""
        return torch.exp(self.log_weight + self.noise_slope * torch.log(sigma / SIGMA_CENTRE))

    def shrink(self, responses: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Each filter's odd piecewise-linear shrinkage of its responses (N, M, H, W); slope 1 past the reach."""
        table = self.shrinkage_table(sigma)
        if torch.is_grad_enabled():
            return _OddPiecewiseLinear.apply(responses, table, self.reach)
        return torch.cat([_shrink_for_inference(responses[i:i + 1], table[i], self.reach)
                          for i in range(responses.shape[0])])

    def regulariser(self, x: torch.Tensor, filters: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """sum_i f_i^T shrink_i(f_i * x), circularly: the right-hand side's prior part."""
        pad = self.size // 2
        responses = F.conv2d(F.pad(x, (2 * pad,) * 4, mode="circular"), filters)  # a margin for the adjoint
        return _adjoint(self.shrink(responses, sigma), filters)

    def forward(self, x, data_top, data_bottom, sigma, rows: int | None = None):
        filters = self.all_filters()
        shape = x.shape[-2:]
        # sum_i |F_i|^2 is the transform of sum_i f_i (x) f_i, one small kernel: one FFT, not one per filter
        autocorrelation = F.conv2d(F.pad(filters.transpose(0, 1), (self.size - 1,) * 4), filters.transpose(0, 1))
        filters_bottom = psf2otf(autocorrelation[0, 0], shape).real
        omega = self.weight(sigma)[:, None, None, None]
        prior = (self.regulariser(x, filters, sigma) if rows is None
                 else self._regulariser_in_strips(x, filters, sigma, rows))
        top = data_top + omega * torch.fft.rfft2(prior)
        return torch.fft.irfft2(top / (data_bottom + omega * filters_bottom), s=shape)

    def _regulariser_in_strips(self, x, filters, sigma, rows: int) -> torch.Tensor:
        """The regulariser a band of rows at a time: a big photo's responses (M planes) never all exist."""
        halo = 2 * (self.size // 2)
        height = x.shape[-2]
        wrapped = torch.cat([x[..., -halo:, :], x, x[..., :halo, :]], dim=-2)
        out = torch.empty_like(x)
        for start in range(0, height, rows):
            stop = min(start + rows, height)
            band = F.pad(wrapped[..., start:stop + 2 * halo, :], (halo, halo, 0, 0), mode="circular")
            out[..., start:stop, :] = _adjoint(self.shrink(F.conv2d(band, filters), sigma), filters)
        return out


def _adjoint(z: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """sum_i f_i^T z_i for responses z (N, M, H + s - 1, W + s - 1) to the filters (M, 1, s, s): (N, 1, H, W).

    As one matrix product (the s^2 taps' weighted sums of the M planes) and s^2 shifted additions:
    a direct M -> 1 convolution is five times slower on the CPU."""
    count, _, size, _ = filters.shape
    taps = filters.flip(-2, -1)[:, 0].reshape(count, size * size).t()
    n, _, full_h, full_w = z.shape
    planes = torch.matmul(taps, z.reshape(n, count, full_h * full_w)).view(n, size * size, full_h, full_w)
    height, width = full_h - size + 1, full_w - size + 1
    out = planes[:, :1, :height, :width].clone()
    for tap in range(1, size * size):
        dy, dx = divmod(tap, size)
        out += planes[:, tap:tap + 1, dy:dy + height, dx:dx + width]
    return out


class DeconvolutionNetwork(nn.Module):
    """Stages of DeconvolutionStage, started from the blurry plane; beta rises as in the hyper-Laplacian."""

    def __init__(self, stages: int = 8, filters: int = 22, size: int = 5, knots: int = 49, reach: float = 0.6,
                 beta_start: float = 1.0, beta_rate: float = 2 * math.sqrt(2)):
        super().__init__()
        self.config = {"stages": stages, "filters": filters, "size": size, "knots": knots, "reach": reach,
                       "beta_start": beta_start, "beta_rate": beta_rate}
        self.stages = nn.ModuleList(
            DeconvolutionStage(filters, size, knots, reach, beta_start * beta_rate**t) for t in range(stages))

    def forward(self, planes: torch.Tensor, kernels: torch.Tensor, sigma: torch.Tensor, every_stage: bool = False,
                rows: int | None = None):
        """planes (N, 1, H, W) padded blurry, kernels (N, K, K), sigma (N,): the deconvolved planes
        (or, with every_stage, the list of each stage's)."""
        otf = psf2otf(kernels.to(planes.dtype), planes.shape[-2:])[:, None]
        data_top = otf.conj() * torch.fft.rfft2(planes)
        data_bottom = otf.abs().square()
        sigma = sigma.clamp_min(NOISE_FLOOR).to(planes.dtype)
        x, outputs = planes, []
        for stage in self.stages:
            x = stage(x, data_top, data_bottom, sigma, rows)
            outputs.append(x)
        return outputs if every_stage else x


def noise_sigmas(planes: torch.Tensor) -> torch.Tensor:
    """Gaussian noise level of each plane (N, 1, H, W): the MAD of its finest diagonal Haar band."""
    h, w = planes.shape[-2] // 2 * 2, planes.shape[-1] // 2 * 2
    g = planes[..., :h, :w]
    band = (g[..., 0::2, 0::2] - g[..., 0::2, 1::2] - g[..., 1::2, 0::2] + g[..., 1::2, 1::2]) / 2
    return band.abs().flatten(1).median(1).values / 0.6745


def deconvolve_learned(pixels: np.ndarray, kernel: np.ndarray, network: DeconvolutionNetwork,
                       device: str | torch.device = "cpu", rows: int = 32, on_channel=None) -> np.ndarray:
    """Deconvolve H x W x C float32 pixels in [0, 1] with `kernel` by the network, one channel at a time,
    padded and tapered for the FFT as deconvolve does. Each channel's noise level is its own, as in
    training (the mean of three channels would read about 1.7x too clean)."""
    device = torch.device(device)
    kernel_t = torch.from_numpy(np.asarray(kernel, np.float32)).to(device)
    network = network.to(device).eval()
    out = np.empty_like(pixels, dtype=np.float32)
    for channel in range(pixels.shape[2]):
        plane = torch.from_numpy(np.ascontiguousarray(pixels[..., channel], np.float32)).to(device)
        padded, top, left = pad_for_fft(plane, kernel_t)
        sigma = torch.tensor([noise_sigma(pixels[..., channel])], dtype=torch.float32, device=device)
        with torch.no_grad():
            result = network(padded[None, None], kernel_t[None], sigma, rows=rows)[0, 0]
        out[..., channel] = result[top:top + plane.shape[0], left:left + plane.shape[1]].cpu().numpy()
        if on_channel:
            on_channel(channel + 1, pixels.shape[2])
    return out
