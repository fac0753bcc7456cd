"""Image quality measured the same way everywhere: PSNR and SSIM on [0, 1] images clipped to range.

Conventions of the deblurring literature (MIMO-UNet, XYDeblur): data range 1, outputs clipped to
[0, 1]; SSIM with an 11x11 Gaussian window (sigma 1.5), averaged over channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image of a batch (N, C, H, W)."""
    mse = (output.clamp(0, 1) - target.clamp(0, 1)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def gradient_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude per image of a batch (N, C, H, W), forward differences, channels averaged.

    How much fine detail an image holds: blur lowers it, noise and oversharpening raise it, so a
    restoration's value over the sharp image's (1: as detailed) tells a blurry result from a
    plausible one from a noisy one, which PSNR alone rewards the same way (it prefers the mean)."""
    image = image.clamp(0, 1).float()
    dy = image[..., 1:, :-1] - image[..., :-1, :-1]
    dx = image[..., :-1, 1:] - image[..., :-1, :-1]
    return (dx * dx + dy * dy).sqrt().flatten(1).mean(1)


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def ssim(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM per image of a batch (N, C, H, W), valid-window means (no padding), as in Wang et al. 2004."""
    x, y = output.clamp(0, 1).float(), target.clamp(0, 1).float()
    channels = x.shape[1]
    window = _gaussian_window(device=x.device).expand(channels, 1, 11, 11)

    def blur(t):
        return F.conv2d(t, window, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


def psnr_aligned(output: torch.Tensor, target: torch.Tensor, shift: float = 5, border: int = 15,
                 step: float = 0.25) -> tuple[torch.Tensor, list]:
    """Levin et al.'s protocol: PSNR at the best shift within +-`shift` px in `step` px steps, bilinear,
    `border` px dropped (their comp_upto_shift.m).

    Blind methods recover the image only up to a translation (their kernels are centred, the
    true ones are not), so plain PSNR punishes a correct result for where it sits; whole-pixel
    shifts (step 1) read about 2 dB lower on Levin's set than the literature's numbers. Returns the
    PSNR per image of a batch (N, C, H, W) and each image's best (dy, dx).
    """
    out, ref = output.clamp(0, 1), target.clamp(0, 1)
    inner = shifted(ref, (0, 0), border)
    best = torch.full((ref.shape[0],), -1.0)
    shifts = [(0.0, 0.0)] * ref.shape[0]
    count = int(round(shift / step))
    offsets = [i * step for i in range(-count, count + 1)]
    for dy in offsets:
        for dx in offsets:
            moved = shifted(out, (dy, dx), border)
            value = 10 * torch.log10(1.0 / (moved - inner).pow(2).flatten(1).mean(1).clamp_min(1e-12))
            for i in torch.nonzero(value > best).flatten().tolist():
                best[i], shifts[i] = value[i], (dy, dx)
    return best, shifts


def shifted(image: torch.Tensor, shift: tuple[float, float], border: int = 15) -> torch.Tensor:
    """The `border`-cropped window of `image` sampled `shift` px further on, bilinearly between pixels
    (to score SSIM where psnr_aligned did); a shift must stay within the border."""
    height, width = image.shape[-2:]
    (iy, fy), (ix, fx) = [(math.floor(s), s - math.floor(s)) for s in shift]

    def window(oy, ox):
        return image[..., border + iy + oy:height - border + iy + oy, border + ix + ox:width - border + ix + ox]

    top = window(0, 0) if fx == 0 else torch.lerp(window(0, 0), window(0, 1), fx)
    if fy == 0:
        return top
    bottom = window(1, 0) if fx == 0 else torch.lerp(window(1, 0), window(1, 1), fx)
    return torch.lerp(top, bottom, fy)
