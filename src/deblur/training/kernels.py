"""Synthetic blur for training and evaluation: camera-shake, Gaussian and defocus kernels, noise, JPEG.

Everything is batched torch on the training device and driven by an explicit torch.Generator, so
a (seed, step) pair always yields the same blur and the data loader never becomes the bottleneck.
Kernels are (N, K, K) with K = MAX_KERNEL, non-negative, summing to 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

MAX_KERNEL = 35  # the largest blur, in pixels; a synthetic crop needs this much margin - 1


@dataclass(frozen=True)
class BlurSettings:
    """How strong and how varied the synthetic degradations are."""

    min_length: int = 7  # camera-shake trajectory extent, pixels
    max_length: int = MAX_KERNEL
    motion_share: float = 0.7  # the rest is split between Gaussian and defocus
    oscillating_share: float = 0.0  # camera shake from a hand swinging back and forth, not a random walk
    varying_share: float = 0.2  # two kernels blended by a smooth mask (spatially varying blur)
    noise_max: float = 0.02  # read-noise sigma upper bound (Gaussian part)
    shot_max: float = 0.01  # signal-dependent (Poisson-like) variance factor upper bound
    jpeg_share: float = 0.3
    jpeg_quality: tuple = (60, 95)
    # the camera pipeline only (synthesis.py): linear light, saturation, sensor noise, rotating shake
    highlight_gain: float = 4.0  # clipped highlights were up to this much brighter in the scene
    light_share: float = 0.2  # crops that get small bright lamps before blurring
    camera_shake_share: float = 0.3  # non-uniform blur from camera rotation instead of a kernel
    max_shot: float = 0.01  # the noisiest sensor's shot-noise factor (linear light)
    response_exponent: tuple = (1.0, 2.2)  # tone-curve power per crop: 1 blurs display values, 2.2 linear light


def blur_settings(changes: dict) -> BlurSettings:
    """The default BlurSettings with some fields changed; a range is given as "low,high" or a pair.
    Raises ValueError naming the setting that is unknown or does not parse."""
    defaults = BlurSettings()
    names = [f.name for f in fields(BlurSettings)]
    values = {}
    for key, value in changes.items():
        if key not in names:
            raise ValueError(f"'{key}' is not a blur setting; the settings are {', '.join(names)}")
        default = getattr(defaults, key)
        try:
            if isinstance(default, tuple):
                parts = value.split(",") if isinstance(value, str) else list(value)
                if len(parts) != len(default):
                    raise ValueError
                values[key] = tuple(_number_like(d, p) for d, p in zip(default, parts))
            else:
                values[key] = _number_like(default, value)
        except (TypeError, ValueError):
            parts = default if isinstance(default, tuple) else (default,)
            kinds, shown = ",".join(type(p).__name__ for p in parts), ",".join(map(str, parts))
            raise ValueError(f"{key}={value}: expected {kinds}, like the default {key}={shown}") from None
    return replace(defaults, **values)


def _number_like(default, value):
    number = float(value)
    if isinstance(default, int):
        if not number.is_integer():
            raise ValueError
        return int(number)
    return number


def uniform(n, low, high, generator, device):
    """n values drawn uniformly from [low, high) on the device."""
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def _splat(points: torch.Tensor, size: int) -> torch.Tensor:
    """Rasterise sub-pixel points (N, P, 2) onto (N, size, size) with bilinear weights."""
    n, p, _ = points.shape
    x0, y0 = points[..., 0].floor(), points[..., 1].floor()
    fx, fy = points[..., 0] - x0, points[..., 1] - y0
    kernels = torch.zeros(n, size * size, device=points.device)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi = (x0 + dx).long().clamp(0, size - 1)
        yi = (y0 + dy).long().clamp(0, size - 1)
        kernels.scatter_add_(1, yi * size + xi, w)
    return kernels.view(n, size, size)


def motion_kernels(n: int, generator: torch.Generator, device="cpu", settings: BlurSettings = BlurSettings(),
                   size: int = MAX_KERNEL, points: int = 96) -> torch.Tensor:
    """Camera-shake kernels: a hand's path (random_walk_paths; with settings.oscillating_share > 0, that
    share from oscillating_paths) scaled to a random extent and rasterised."""
    path = random_walk_paths(n, points, generator, device)
    if settings.oscillating_share > 0:  # drawn only when asked, so older runs keep their exact blur
        swinging = torch.rand(n, generator=generator, device=device) < settings.oscillating_share
        path = torch.where(swinging[:, None, None], oscillating_paths(n, points, generator, device), path)
    path = path - path.mean(1, keepdim=True)
    extent = (path.amax(1) - path.amin(1)).amax(-1).clamp_min(1e-6)  # (n,)
    length = uniform(n, settings.min_length, settings.max_length, generator, device)
    path = path * ((length - 1) / extent)[:, None, None] + (size - 1) / 2
    kernels = _splat(path, size)
    return kernels / kernels.sum((1, 2), keepdim=True)


def random_walk_paths(n: int, points: int, generator: torch.Generator, device="cpu") -> torch.Tensor:
    """(N, points, 2) hand paths at equal time steps: a random walk with inertia (velocity changes slowly)."""
    accel = torch.randn(n, points, 2, generator=generator, device=device)
    velocity = torch.randn(n, 1, 2, generator=generator, device=device) * 2 + accel.cumsum(1) * 0.35
    return velocity.cumsum(1)


def oscillating_paths(n: int, points: int, generator: torch.Generator, device="cpu") -> torch.Tensor:
    """(N, points, 2) hand paths at equal time steps: a main swing along a line, 0.25-1 cycle per
    exposure, plus two weaker swings in other directions and a slow drift. A swinging hand slows to a
    stop where it turns, so its kernel has bright dwell points joined by faint sweeps, as recorded camera
    shake has (Levin et al. 2009; Gavant et al. 2011 model shake as low-frequency oscillation); the
    random walk moves at an even pace."""
    swings = 3
    time = torch.linspace(0, 1, points, device=device)[None, :, None]  # (1, P, 1)
    cycles = uniform(n * swings, 0.25, 1.0, generator, device).view(n, 1, swings)
    phase = uniform(n * swings, 0, 2 * math.pi, generator, device).view(n, 1, swings)
    angle = uniform(n * swings, 0, math.pi, generator, device).view(n, 1, swings)
    strength = torch.rand(n, 1, swings, generator=generator, device=device) * 0.5
    strength[..., 0] = 1.0  # one swing leads; the others bend its line
    offset = strength / cycles * torch.sin(2 * math.pi * cycles * time + phase)  # (N, P, swings)
    path = torch.stack(((offset * angle.cos()).sum(2), (offset * angle.sin()).sum(2)), -1)
    drift = torch.randn(n, 1, 2, generator=generator, device=device) * 0.3
    return path + drift * time


def gaussian_kernels(n: int, generator: torch.Generator, device="cpu", size: int = MAX_KERNEL) -> torch.Tensor:
    """Anisotropic Gaussians: out-of-focus haze and slight motion, sigma 0.5-4 px."""
    s1 = uniform(n, 0.5, 4.0, generator, device)
    s2 = uniform(n, 0.5, 4.0, generator, device)
    angle = uniform(n, 0, math.pi, generator, device)
    coords = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    c, s = angle.cos()[:, None, None], angle.sin()[:, None, None]
    u, v = c * x + s * y, -s * x + c * y
    kernels = torch.exp(-0.5 * ((u / s1[:, None, None]) ** 2 + (v / s2[:, None, None]) ** 2))
    return kernels / kernels.sum((1, 2), keepdim=True)


def defocus_kernels(n: int, generator: torch.Generator, device="cpu", size: int = MAX_KERNEL) -> torch.Tensor:
    """Discs of radius 1-8 px with an anti-aliased rim: a lens focused elsewhere."""
    radius = uniform(n, 1.0, 8.0, generator, device)[:, None, None]
    coords = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    kernels = (radius + 0.5 - (x**2 + y**2).sqrt()).clamp(0, 1)
    return kernels / kernels.sum((1, 2), keepdim=True)


def random_kernels(n: int, generator: torch.Generator, device="cpu",
                   settings: BlurSettings = BlurSettings()) -> torch.Tensor:
    """A mix: mostly camera shake, some Gaussian, some defocus."""
    kinds = torch.rand(n, generator=generator, device=device)
    motion = motion_kernels(n, generator, device, settings)
    gaussian = gaussian_kernels(n, generator, device)
    defocus = defocus_kernels(n, generator, device)
    rest = (1 - settings.motion_share) / 2
    pick = torch.where((kinds < settings.motion_share)[:, None, None], motion,
                       torch.where((kinds < settings.motion_share + rest)[:, None, None], gaussian, defocus))
    return pick


def blur_valid(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image (N, C, H, W) with its own kernel (N, K, K); 'valid': the result is K-1 smaller.

    Cropping with a margin and convolving 'valid' means no border is invented by padding.
    """
    n, c, h, w = images.shape
    k = kernels.shape[-1]
    weight = kernels.flip(-1, -2).repeat_interleave(c, 0)[:, None]  # true convolution, one kernel per image
    out = F.conv2d(images.reshape(1, n * c, h, w), weight.to(images.dtype), groups=n * c)
    return out.view(n, c, h - k + 1, w - k + 1)


def smooth_masks(n: int, height: int, width: int, generator: torch.Generator, device="cpu") -> torch.Tensor:
    """(N, 1, H, W) masks in [0, 1] that change slowly across the image: a soft random ramp."""
    coarse = torch.rand(n, 1, 3, 3, generator=generator, device=device)
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True).clamp(0, 1)


def add_noise(images: torch.Tensor, generator: torch.Generator, settings: BlurSettings = BlurSettings()):
    """Poisson-Gaussian sensor noise: variance = shot * signal + read^2, per image."""
    n = images.shape[0]
    read = uniform(n, 0, settings.noise_max, generator, images.device)[:, None, None, None]
    shot = uniform(n, 0, settings.shot_max, generator, images.device)[:, None, None, None]
    sigma = (shot * images.clamp(0, 1) + read**2).sqrt()
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + sigma * noise).clamp(0, 1)


def jpeg_roundtrip(images: torch.Tensor, generator: torch.Generator, settings: BlurSettings = BlurSettings()):
    """Compress a random share of the batch as JPEG (on the CPU: no GPU JPEG encoder is portable)."""
    import cv2
    import numpy as np

    n = images.shape[0]
    chosen = torch.rand(n, generator=generator, device=images.device) < settings.jpeg_share
    low, high = settings.jpeg_quality
    qualities = torch.randint(low, high + 1, (n,), generator=generator, device=images.device)
    out = images.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        pixels = (images[i].permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).byte().cpu().numpy()
        ok, data = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(qualities[i])])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()
        out[i] = torch.from_numpy(np.ascontiguousarray(decoded)).to(images.device).permute(2, 0, 1).float() / 255
    return out


def kernel_blur(images: torch.Tensor, generator: torch.Generator, settings: BlurSettings = BlurSettings()):
    """Each image (with MAX_KERNEL - 1 px of margin) blurred 'valid' by a random kernel; a share of them
    by two kernels blended with a smooth mask (a subject moving against its background)."""
    n = images.shape[0]
    device = images.device
    blurry = blur_valid(images, random_kernels(n, generator, device, settings))
    varying = torch.rand(n, generator=generator, device=device) < settings.varying_share
    if varying.any():
        second = blur_valid(images, random_kernels(n, generator, device, settings))
        mask = smooth_masks(n, blurry.shape[-2], blurry.shape[-1], generator, device)
        blurry = torch.where(varying[:, None, None, None], mask * blurry + (1 - mask) * second, blurry)
    return blurry


def synthesize(sharp_with_margin: torch.Tensor, generator: torch.Generator,
               settings: BlurSettings = BlurSettings()) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurry, sharp) from sharp crops that carry MAX_KERNEL - 1 pixels of margin; both lose the margin."""
    _, _, h, w = sharp_with_margin.shape
    margin = (MAX_KERNEL - 1) // 2
    blurry = add_noise(kernel_blur(sharp_with_margin, generator, settings), generator, settings)
    blurry = jpeg_roundtrip(blurry, generator, settings)
    sharp = sharp_with_margin[..., margin:h - margin, margin:w - margin]
    return blurry, sharp
