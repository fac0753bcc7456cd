"""Fourier-domain helpers shared by kernel estimation and deconvolution (torch, any device and dtype).

Images are 2-D tensors (H, W) or batches (..., H, W); kernels are (K, K) convolution kernels
(not flipped correlation filters) whose centre is pixel (K // 2, K // 2). Every operator here is
circular: callers make their images periodic first (`edgetaper`, `pad_periodic`).
"""

from __future__ import annotations

import math

import torch


def psf2otf(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The real FFT of `kernel` (K, K), or of each of a batch (..., K, K), zero-padded to `shape`,
    with its centre moved to pixel (0, 0)."""
    height, width = shape
    kh, kw = kernel.shape[-2:]
    padded = kernel.new_zeros(*kernel.shape[:-2], height, width)
    padded[..., :kh, :kw] = kernel
    padded = torch.roll(padded, (-(kh // 2), -(kw // 2)), (-2, -1))
    return torch.fft.rfft2(padded)


def gradient_otfs(shape: tuple[int, int], dtype=torch.float64, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Transfer functions of the forward differences x[i+1] - x[i] along x and along y."""
    height, width = shape
    dx = torch.zeros(height, width, dtype=dtype, device=device)
    dx[0, 0], dx[0, -1] = -1, 1
    dy = torch.zeros(height, width, dtype=dtype, device=device)
    dy[0, 0], dy[-1, 0] = -1, 1
    return torch.fft.rfft2(dx), torch.fft.rfft2(dy)


def gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Circular forward differences along x and y."""
    return torch.roll(image, -1, -1) - image, torch.roll(image, -1, -2) - image


def convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Circular convolution of an image (or batch) with a kernel."""
    shape = image.shape[-2:]
    return torch.fft.irfft2(torch.fft.rfft2(image) * psf2otf(kernel.to(image.dtype), shape), s=shape)


def taper_window(length: int, ramp: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """1 in the middle, rising as sin^2 over `ramp` pixels at both ends (a Tukey-like window)."""
    window = torch.ones(length, dtype=dtype, device=device)
    ramp = max(1, min(ramp, length // 2))
    rise = torch.sin(torch.arange(ramp, dtype=dtype, device=device) * math.pi / (2 * ramp - 1)) ** 2
    window[:ramp] = rise
    window[length - ramp:] = rise.flip(0)
    return window


def edgetaper(image: torch.Tensor, kernel: torch.Tensor, ramp: int | None = None, rounds: int = 3) -> torch.Tensor:
    """Blend the borders with the image blurred by `kernel` (circularly) so that it wraps smoothly.
    A batch of images (N, ..., H, W) may come with one kernel each (N, 1, ..., K, K).

    As MATLAB's edgetaper: without it the jump between opposite borders looks like a sharp edge
    to every FFT-based step, and biases kernels towards a delta and deconvolutions towards ringing.
    """
    height, width = image.shape[-2:]
    ramp = ramp or kernel.shape[-1]
    weight = (taper_window(height, ramp, image.dtype, image.device)[:, None]
              * taper_window(width, ramp, image.dtype, image.device)[None, :])
    otf = psf2otf(kernel.to(image.dtype), (height, width))
    out = image
    for _ in range(rounds):
        blurred = torch.fft.irfft2(torch.fft.rfft2(out) * otf, s=(height, width))
        out = weight * out + (1 - weight) * blurred
    return out


def fast_length(n: int) -> int:
    """The smallest length >= n whose prime factors are 2, 3 and 5 (FFTs are fastest there)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1
