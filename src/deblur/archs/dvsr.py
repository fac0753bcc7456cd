"""DvSR, "Deblurring via Stochastic Refinement" (Whang et al., CVPR 2022), the networks only.

Two U-Nets of the paper's Fig. 10: the initial predictor g(y) and the denoiser f(z_t, noise level,
y), which predicts the noise in a noisy version of the residual x0 - g(y). Widths c, 2c, 3c, 4c at
H, H/2, H/4, H/8; BigGAN-style residual blocks that carry the up/down-sampling; skips joined by
concatenation; no normalisation and no attention (fully convolutional, any size that is a
multiple of 8). The continuous noise level is embedded (sinusoid -> MLP) and added after the
first conv of every block. The sampler that turns these into an image lives in samplers.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEVEL_SCALE = 1000.0  # sqrt(alpha_bar) in [0, 1] is spread over [0, 1000] before the sinusoid


def noise_level_encoding(level: torch.Tensor, channels: int) -> torch.Tensor:
    """Sinusoidal encoding (N, channels) of the noise level sqrt(alpha_bar) (N,), the same in training
    and sampling."""
    half = channels // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, device=level.device) / half)
    angles = LEVEL_SCALE * level.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class NoiseEmbedding(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.SiLU(), nn.Linear(4 * channels, channels))

    def forward(self, level: torch.Tensor) -> torch.Tensor:
        return self.mlp(noise_level_encoding(level, self.channels))


class BigGANBlock(nn.Module):
    """swish -> resample -> conv3x3 (+ noise embedding) -> swish -> dropout -> conv3x3, plus a resampled skip."""

    def __init__(self, in_ch: int, out_ch: int, resample: str = "none", embed_ch: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        self.resample = resample
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.embed = nn.Linear(embed_ch, out_ch) if embed_ch else None
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch or resample != "none" else nn.Identity()

    def _resample(self, x):
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def forward(self, x, embedding=None):
        h = self.conv1(self._resample(F.silu(x)))
        if self.embed is not None:
            h = h + self.embed(F.silu(embedding))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(self._resample(x))


class UNet(nn.Module):
    """The U-Net of both networks; with `noise_embedding` it is the denoiser."""

    def __init__(self, in_ch: int, width: int, blocks: int = 1, multipliers=(1, 2, 3, 4),
                 noise_embedding: bool = False, dropout: float = 0.0):
        super().__init__()
        embed_ch = width if noise_embedding else None
        self.embedding = NoiseEmbedding(width) if noise_embedding else None
        self.head = nn.Conv2d(in_ch, width, 1)
        widths = [width * m for m in multipliers]

        def block(i, o, resample="none"):
            return BigGANBlock(i, o, resample, embed_ch, dropout)

        self.down = nn.ModuleList()
        skips, channels = [width], width
        for level, level_width in enumerate(widths):
            for _ in range(blocks):
                self.down.append(block(channels, level_width))
                channels = level_width
                skips.append(channels)
            if level < len(widths) - 1:
                self.down.append(block(channels, channels, "down"))
                skips.append(channels)
        self.middle = nn.ModuleList([block(channels, channels), block(channels, channels)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for _ in range(blocks + 1):
                self.up.append(block(channels + skips.pop(), widths[level]))
                channels = widths[level]
            if level > 0:
                self.up.append(block(channels, channels, "up"))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x, level=None):
        embedding = self.embedding(level) if self.embedding is not None else None
        h = self.head(x)
        skips = [h]
        for block in self.down:
            h = block(h, embedding)
            skips.append(h)
        for block in self.middle:
            h = block(h, embedding)
        for block in self.up:
            if block.resample == "up":
                h = block(h, embedding)
            else:
                h = block(torch.cat([h, skips.pop()], dim=1), embedding)
        return self.tail(F.silu(h))


class DvSR(nn.Module):
    """Predictor g and denoiser f in one module (one checkpoint). Images are in [0, 1]; the diffusion
    runs on the residual r = residual_scale * (x0 - g(y)), 2 in the paper's [-1, 1] convention."""

    PREDICTORS = ("unet", "xydeblur")
    CONDITIONS = ("blurry", "prediction")
    PAPER_INPUTS = 6  # the paper's denoiser input: z_t and y, 3 channels each (g(y) adds 3 more)

    def __init__(self, predictor_width: int = 32, denoiser_width: int = 16, blocks: int = 1, dropout: float = 0.0,
                 predictor: str = "unet", predictor_blocks: int = 3, condition: str = "blurry",
                 residual_scale: float = 2.0):
        """predictor "unet" is the paper's g; "xydeblur" makes g the default model's network (width
        predictor_width, predictor_blocks blocks), so that `--steps 0` is that network and a trained
        one can be reused as it is (our choice: the predictor is the deblurrer the project trains most).

        condition "blurry" is the paper's f(z_t, level, y); "prediction" also gives the denoiser g(y).
        Our choice, for a fixed predictor: the residual x0 - g(y) is then in plain sight, where otherwise a
        small denoiser must rebuild g's output inside itself to know what it is predicting the residual of.

        residual_scale 2 is the paper's. A good predictor leaves a residual 2 (x0 - g(y)) of standard
        deviation about 0.2, which unit noise hides at every level but the last few (sqrt(alpha_bar)
        above 0.98), so the noise loss says little about the residual there; a larger scale brings
        the residual to the noise's size (our choice, after Chen 2023 on scaling the signal).
        """
        super().__init__()
        if predictor not in self.PREDICTORS:
            raise ValueError(f"predictor={predictor} is not one of {', '.join(self.PREDICTORS)}")
        if condition not in self.CONDITIONS:
            raise ValueError(f"condition={condition} is not one of {', '.join(self.CONDITIONS)}")
        self.condition = condition
        self.residual_scale = float(residual_scale)
        self.predictor_kind = predictor
        if predictor == "xydeblur":
            from deblur.archs.xydeblur import XYDeblur

            self.predictor = XYDeblur(predictor_width, predictor_blocks)
        else:
            self.predictor = UNet(3, predictor_width, blocks)
            # Start from g(y) = y (a zero correction): a random predictor would begin far below the blurry
            # input and, trained only through the residual, take long to recover. Our choice.
            nn.init.zeros_(self.predictor.tail.weight)
            nn.init.zeros_(self.predictor.tail.bias)
        inputs = self.PAPER_INPUTS + (3 if condition == "prediction" else 0)
        self.denoiser = UNet(inputs, denoiser_width, blocks, noise_embedding=True, dropout=dropout)

    def predict(self, blurry: torch.Tensor) -> torch.Tensor:
        """x_init = g(y): both predictors output a correction added to y (our choice; the paper is silent)."""
        if self.predictor_kind == "xydeblur":
            return self.predictor(blurry)
        return blurry + self.predictor(2 * blurry - 1) / 2

    @property
    def predictor_trains(self) -> bool:
        return any(parameter.requires_grad for parameter in self.predictor.parameters())

    def denoise(self, noisy_residual: torch.Tensor, level: torch.Tensor, blurry: torch.Tensor,
                x_init: torch.Tensor) -> torch.Tensor:
        """f(z_t, sqrt(alpha_bar), y[, g(y)]): the noise in z_t."""
        inputs = [noisy_residual, 2 * blurry - 1]
        if self.condition == "prediction":
            inputs.append(2 * x_init - 1)
        return self.denoiser(torch.cat(inputs, dim=1), level)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A denoiser trained on y alone grows into one that also sees g(y): the new inputs start with zero
        # weights, so the network computes what it did and training continues from there.
        key = prefix + "denoiser.head.weight"
        if self.condition == "prediction" and key in state_dict and state_dict[key].shape[1] == self.PAPER_INPUTS:
            grown = state_dict[key].new_zeros(self.denoiser.head.weight.shape)
            grown[:, :self.PAPER_INPUTS] = state_dict[key]
            state_dict[key] = grown
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, blurry: torch.Tensor, sharp: torch.Tensor | None = None, levels: torch.Tensor | None = None,
                noise: torch.Tensor | None = None):
        """The predictor alone (diffusion steps 0: deterministic, the high-PSNR-per-FLOP mode); given
        `sharp`, `levels` and `noise`, the training pass (x_init, predicted noise), in one forward so
        that distributed training sees both networks."""
        # a frozen predictor (a trained deblurrer reused) needs no graph: the denoiser alone learns
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.predictor_trains):
            x_init = self.predict(blurry)
        if sharp is None:
            return x_init
        noisy = noisy_residual(x_init, sharp, levels, noise, self.residual_scale)
        return x_init, self.denoise(noisy, levels, blurry, x_init)


def noisy_residual(x_init: torch.Tensor, sharp: torch.Tensor, levels: torch.Tensor, noise: torch.Tensor,
                   scale: float) -> torch.Tensor:
    """z = sqrt(alpha_bar) * r + sqrt(1 - alpha_bar) * noise with r = scale * (x0 - g(y)): Eq. (6) with the
    residual the paper means (sharp minus the predictor's output; its text misprints g(x0))."""
    level = levels.view(-1, 1, 1, 1)
    return level * scale * (sharp - x_init) + (1 - level**2).clamp_min(0).sqrt() * noise
