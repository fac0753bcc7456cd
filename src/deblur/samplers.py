"""How a network becomes an image.

The network only predicts; the sampler decides how it is called (like a diffusers scheduler).
`direct` is one forward pass (XYDeblur, or DvSR's predictor alone). `diffusion` is DvSR's
Algorithm 1: x_init = g(y), then T denoising steps on the residual from pure noise, optionally
for K samples at once whose residuals are averaged (sample averaging: higher PSNR).
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from deblur.diffusion import inference_schedule, noise_field


class Sampler(Protocol):
    def __call__(self, blurry: torch.Tensor, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """Map a padded 1CHW tile in [0, 1], whose top-left pixel sits at `origin` in the photo, to
        its restored version, same shape."""


def direct(network: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """One deterministic forward pass."""

    def sample(blurry: torch.Tensor, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
        return network(blurry)

    return sample


def diffusion(model: torch.nn.Module, steps: int, samples: int = 1, seed: int = 0,
              schedule_end: float | None = None, variance: str = "posterior",
              on_step: Callable[[int, int], None] | None = None) -> Callable[..., torch.Tensor]:
    """DvSR sampling (Algorithm 1) with an inference schedule of its own; `steps` 0 is the predictor alone.

    variance: "posterior" (beta~_t, as SR3's code) or "beta" (sigma_t^2 = beta_t).
    """
    if steps < 0 or samples < 1:
        raise ValueError("steps must be >= 0 and samples >= 1")
    if variance not in ("posterior", "beta"):
        raise ValueError("variance is 'posterior' or 'beta'")
    schedule = inference_schedule(steps, schedule_end) if steps else None
    scale = model.residual_scale

    def sample(blurry: torch.Tensor, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
        x_init = model.predict(blurry)
        if not steps:
            return x_init
        _, channels, height, width = blurry.shape
        y, prediction = blurry.expand(samples, -1, -1, -1), x_init.expand(samples, -1, -1, -1)
        # the residual may move the image only within [0, 1]
        low, high = (-scale * x_init).expand_as(y), (scale * (1 - x_init)).expand_as(y)
        betas = schedule.betas.tolist()
        alpha_bars = schedule.alpha_bars.tolist()

        def noise(step):
            return noise_field(seed, step, samples, channels, *origin, height, width, blurry.device).to(blurry.dtype)

        z = noise(steps)
        for t in reversed(range(steps)):
            beta, alpha_bar = betas[t], alpha_bars[t]
            alpha_bar_prev = alpha_bars[t - 1] if t > 0 else 1.0
            level = torch.full((samples,), alpha_bar ** 0.5, device=blurry.device)
            eps = model.denoise(z, level, y, prediction)
            z0 = ((z - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar ** 0.5).clamp(low, high)
            # the mean of q(z_{t-1} | z_t, z0), written with the clipped z0
            mean = (alpha_bar_prev ** 0.5 * beta / (1 - alpha_bar)) * z0 \
                + ((1 - beta) ** 0.5 * (1 - alpha_bar_prev) / (1 - alpha_bar)) * z
            if t > 0:
                var = beta * (1 - alpha_bar_prev) / (1 - alpha_bar) if variance == "posterior" else beta
                z = mean + var ** 0.5 * noise(t)
            else:
                z = mean
            if on_step:
                on_step(steps - t, steps)
        return x_init + z.mean(0, keepdim=True) / scale

    return sample


SAMPLERS = {"direct": direct, "diffusion": diffusion}
