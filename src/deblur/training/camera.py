"""A camera run backwards and forwards, so synthetic blur looks like a real exposure.

A long exposure sums photons: blur happens in linear light, before the sensor clips and before the
camera's tone curve. Bright light sources clip in the sharp photo but smear into streaks when blurred;
sensor noise is added to the blurred signal. RSBlur (Rim et al., ECCV 2022) measured that each of
these steps raises what a network trained on synthetic blur scores on real blur.
All functions work on batches (N, C, H, W) and take an explicit torch.Generator.
"""

from __future__ import annotations

import math

import torch

from deblur.training.kernels import uniform


def srgb_to_linear(srgb: torch.Tensor) -> torch.Tensor:
    """The inverse sRGB tone curve (IEC 61966-2-1); a stand-in for the unknown camera response."""
    srgb = srgb.clamp(0, 1)
    return torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    linear = linear.clamp(0, 1)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def response_exponents(n: int, generator: torch.Generator, low: float, high: float, device="cpu") -> torch.Tensor:
    """A tone-curve exponent per crop (N, 1, 1, 1), uniform in [low, high]: 1 blurs display values as
    they are, 2.2 blurs in linear light. Real cameras' curves are unknown and a fixed 2.2 teaches a
    network to darken: blurring in linear light, then re-applying the concave curve, brightens a
    photo (Jensen), on average 2.4 of 255 levels on our crops at 2.2, against +0.7 on gopro-avg and
    -0.2 on levin (measured)."""
    return uniform(n, low, high, generator, device)[:, None, None, None]


def decode(display: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """Display values to (approximately) linear light with a per-crop power curve."""
    return display.clamp(0, 1) ** exponent


def encode(linear: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """Linear light back to display values: clip at white (the sensor's full well), then the curve."""
    return linear.clamp(0, 1).clamp_min(1e-12) ** (1 / exponent)


def brighten_highlights(linear: torch.Tensor, generator: torch.Generator, max_gain: float) -> torch.Tensor:
    """Pixels clipped white in the photo were brighter in the scene: raise them by a random gain (1 to
    max_gain per image), so blurring them spreads more light than the clipped value holds."""
    n = linear.shape[0]
    gain = uniform(n, 1.0, max_gain, generator, linear.device)[:, None, None, None]
    brightness = linear.amin(1, keepdim=True)  # white in every channel
    # only pixels at the clip (sRGB 0.98 and up): the sharp target hardly changes when it clips again
    weight = ((brightness - 0.95) / 0.03).clamp(0, 1)
    return linear * (1 + (gain - 1) * weight)


def add_light_sources(linear: torch.Tensor, generator: torch.Generator, share: float,
                      max_count: int = 4) -> torch.Tensor:
    """Small, very bright lamps (2-30x white) in a share of the crops: the night-time streaks of real shake."""
    n, c, h, w = linear.shape
    device = linear.device
    chosen = torch.rand(n, generator=generator, device=device) < share
    counts = torch.randint(1, max_count + 1, (n,), generator=generator, device=device)
    centres = torch.rand(n, max_count, 2, generator=generator, device=device) * torch.tensor([w, h], device=device)
    radii = uniform(n * max_count, 0.7, 3.0, generator, device).view(n, max_count)
    peaks = torch.exp(uniform(n * max_count, math.log(2), math.log(30), generator, device)).view(n, max_count)
    # warm white to slightly coloured: each channel 0.6-1 of the peak
    tints = uniform(n * max_count * c, 0.6, 1.0, generator, device).view(n, max_count, c)
    ys = torch.arange(h, device=device, dtype=linear.dtype)[:, None]
    xs = torch.arange(w, device=device, dtype=linear.dtype)[None, :]
    out = linear.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        for j in range(int(counts[i])):
            x, y = centres[i, j]
            disc = (radii[i, j] + 0.5 - ((xs - x) ** 2 + (ys - y) ** 2).sqrt()).clamp(0, 1)
            out[i] = out[i] + disc[None] * (peaks[i, j] * tints[i, j])[:, None, None]
    return out


def sensor_noise(linear: torch.Tensor, generator: torch.Generator, max_shot: float) -> torch.Tensor:
    """Poisson-Gaussian noise in linear light at the levels of real phone and camera sensors.

    Levels are drawn as in Brooks et al. 2019 ("Unprocessing images"): shot-noise factor log-uniform
    in [1e-4, max_shot], read-noise variance tied to it by their fit across real sensors.
    """
    n = linear.shape[0]
    device = linear.device
    log_shot = uniform(n, math.log(1e-4), math.log(max_shot), generator, device)
    log_read_var = 2.18 * log_shot + 1.20 + 0.26 * torch.randn(n, generator=generator, device=device)
    shot, read_var = log_shot.exp()[:, None, None, None], log_read_var.exp()[:, None, None, None]
    sigma = (shot * linear.clamp(0, 1) + read_var).sqrt()
    return linear + sigma * torch.randn(linear.shape, generator=generator, device=device, dtype=linear.dtype)

