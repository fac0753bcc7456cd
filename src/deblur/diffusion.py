"""The diffusion pieces DvSR training and sampling share: noise schedules and a positional noise field.

Training uses SR3's schedule (linear beta 1e-6 -> 1e-2 over 2000 steps) with the continuous
noise level sqrt(alpha_bar) drawn between schedule points; sampling may use any other schedule,
because the denoiser is conditioned on the level itself, not on a step index.

The noise field gives every pixel of the whole photo its own Gaussian value from a hash of
(seed, step, sample, channel, row, column). A tile reads the values at its own coordinates, so
tiles that overlap agree on their noise (no seams), and a seed reproduces a run on any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TRAIN_STEPS = 2000
TRAIN_BETA = (1e-6, 1e-2)


@dataclass(frozen=True)
class Schedule:
    betas: torch.Tensor  # (T,) float64

    @property
    def steps(self) -> int:
        return self.betas.shape[0]

    @property
    def alphas(self) -> torch.Tensor:
        return 1 - self.betas

    @property
    def alpha_bars(self) -> torch.Tensor:
        return torch.cumprod(self.alphas, 0)


def linear_schedule(steps: int, start: float, end: float) -> Schedule:
    return Schedule(torch.linspace(start, end, steps, dtype=torch.float64))


TRAIN_SCHEDULE = linear_schedule(TRAIN_STEPS, *TRAIN_BETA)
FINAL_ALPHA_BAR = float(TRAIN_SCHEDULE.alpha_bars[-1])  # how close to pure noise training went


def default_schedule_end(steps: int, start: float = 1e-4) -> float:
    """The final beta that brings a `steps`-long linear schedule as close to pure noise as training went
    (so starting the sampler from N(0, I) matches what the denoiser has seen)."""
    low, high = start, 0.999
    for _ in range(60):
        middle = (low + high) / 2
        if float(linear_schedule(steps, start, middle).alpha_bars[-1]) > FINAL_ALPHA_BAR:
            low = middle
        else:
            high = middle
    return high


def inference_schedule(steps: int, end: float | None = None, start: float = 1e-4) -> Schedule:
    return linear_schedule(steps, min(start, end or 1.0), end if end is not None else default_schedule_end(steps, start))


def sample_training_levels(count: int, generator: torch.Generator, device="cpu") -> torch.Tensor:
    """Continuous sqrt(alpha_bar): a schedule step t at random, then uniform between steps t-1 and t."""
    root = torch.cat([torch.ones(1, dtype=torch.float64), TRAIN_SCHEDULE.alpha_bars.sqrt()])
    t = torch.randint(1, TRAIN_STEPS + 1, (count,), generator=generator)
    u = torch.rand(count, generator=generator, dtype=torch.float64)
    levels = root[t - 1] + u * (root[t] - root[t - 1])
    return levels.float().to(device)


# -- the positional noise field ----------------------------------------------------------------------

_MASK = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (lowbias32) on int64 tensors; products wrap, and only the low 32 bits count."""
    x = x & _MASK
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def noise_field(seed: int, step: int, samples: int, channels: int, top: int, left: int, height: int, width: int,
                device="cpu") -> torch.Tensor:
    """(samples, channels, height, width) standard normal values at global rows top.. and columns left.."""
    key = int(_hash32(torch.tensor([seed * 1_000_003 + step], dtype=torch.int64))[0])
    rows = torch.arange(top, top + height, dtype=torch.int64, device=device)
    cols = torch.arange(left, left + width, dtype=torch.int64, device=device)
    sample = torch.arange(samples, dtype=torch.int64, device=device)[:, None, None, None]
    channel = torch.arange(channels, dtype=torch.int64, device=device)[None, :, None, None]
    index = _hash32(_hash32(_hash32(sample * 7919 + channel + key) + rows[None, None, :, None])
                    + cols[None, None, None, :] * 65537)
    u1 = (_hash32(index ^ 0x5BD1E995).double() + 0.5) / 2**32
    u2 = (_hash32(index ^ 0x1B873593).double() + 0.5) / 2**32
    return (torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)).float()
