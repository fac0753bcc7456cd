"""Blurry training photos made from sharp ones, the way a camera makes them.

Two pipelines, chosen by `deblur train --synthesis`:
- camera (experimental; it measured worse than srgb on every evaluation set, see the README): undo a
  tone curve (a power 1-2.2 drawn per crop), brighten clipped highlights and add lamps, blur in linear
  light (a kernel, or camera rotation that varies across the frame), add Poisson-Gaussian sensor noise,
  clip, re-apply the tone curve, then JPEG. The sharp target goes through the same clip and curve.
- srgb (the default): kernels convolved with sRGB values, then noise and JPEG.
"""

from __future__ import annotations

import torch

from deblur.training import camera, kernels
from deblur.training.camera_motion import camera_shake_blur
from deblur.training.kernels import MAX_KERNEL, BlurSettings

PIPELINES = ("camera", "srgb")


def synthesize(sharp_with_margin: torch.Tensor, generator: torch.Generator, settings: BlurSettings = BlurSettings(),
               pipeline: str = "srgb") -> tuple[torch.Tensor, torch.Tensor]:
    """(blurry, sharp) sRGB batches from sharp sRGB crops carrying MAX_KERNEL - 1 pixels of margin."""
    if pipeline == "srgb":
        return kernels.synthesize(sharp_with_margin, generator, settings)
    if pipeline != "camera":
        raise ValueError(f"unknown synthesis pipeline '{pipeline}'; use {' or '.join(PIPELINES)}")
    n, _, h, w = sharp_with_margin.shape
    device = sharp_with_margin.device
    margin = (MAX_KERNEL - 1) // 2
    exponent = camera.response_exponents(n, generator, *settings.response_exponent, device=device)
    scene = camera.decode(sharp_with_margin, exponent)
    scene = camera.brighten_highlights(scene, generator, settings.highlight_gain)
    scene = camera.add_light_sources(scene, generator, settings.light_share)

    blurry = kernels.kernel_blur(scene, generator, settings)
    rotating = torch.rand(n, generator=generator, device=device) < settings.camera_shake_share
    if rotating.any():
        shaken = camera_shake_blur(scene[rotating], generator, margin, settings.min_length, settings.max_length)
        blurry = blurry.index_put((rotating,), shaken)

    blurry = camera.encode(camera.sensor_noise(blurry, generator, settings.max_shot), exponent)
    blurry = kernels.jpeg_roundtrip(blurry, generator, settings)
    sharp = camera.encode(scene[..., margin:h - margin, margin:w - margin], exponent)
    return blurry, sharp
