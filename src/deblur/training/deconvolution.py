"""Training the learned non-blind deconvolution (shake/deconvolution_network.py) on sharp photos.

Each step blurs gray crops (one random colour channel of a sharp photo) with the project's camera-
shake kernels, adds sensor noise (40% of the planes as clean as a good camera at base ISO, the rest
up to high-ISO levels) and 8-bit rounding, sometimes clips highlights first, and pads and
tapers them exactly as a photo is padded at inference. The network is given the kernel, or, for a
share of the batch, a perturbed one (noise on and around its support): estimated kernels are never
exact, and a deconvolution trained only on true kernels rings on the wrong ones (Vasu et al. 2018).
The loss is the mean log MSE of the planes (their mean PSNR) at the last stage, plus a little of
every earlier one (each stage stays a sensible deconvolution, as when stages are trained greedily). Adam, warm-up and cosine, an EMA of
the weights (saved and validated), everything resumable from the run folder (training/run_dir.py).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deblur.errors import UsageError
from deblur.metrics import psnr, ssim
from deblur.shake.deconvolvers import ARCH
from deblur.shake.deconvolution_network import DeconvolutionNetwork, noise_sigmas
from deblur.shake.deconvolve import pad_for_fft
from deblur.training import kernels as kernel_synthesis
from deblur.training.data import (DataReport, augment, load_sharp, random_crop, refuse_problems, split_holdout,
                                  step_generator)
from deblur.training.run_dir import RunDir
from deblur.training.trainer import cosine_after_warmup, update_ema

FAST_PARAMETERS = ("filter_log_scales", "log_weight", "noise_slope", "shrinkage_gains")


@dataclass
class DeconvolutionTrainConfig:
    network: dict = field(default_factory=dict)  # DeconvolutionNetwork settings changed from its defaults
    steps: int = 20000
    batch_size: int = 4  # gray planes
    crop: int = 112  # blurry plane size before padding
    lr: float = 5e-4
    min_lr_ratio: float = 0.01
    warmup: int = 100
    clip: float = 1.0
    ema: float = 0.999
    noise: tuple = (0.004, 0.04)  # Gaussian sigma of noisy planes, drawn log-uniformly
    shot_max: float = 0.001  # their signal-dependent variance factor, drawn uniformly up to this
    clean_share: float = 0.4  # planes as clean as a good camera's at base ISO (Levin et al.'s set: 0.3%)
    clean_noise: tuple = (0.0005, 0.004)  # their Gaussian sigma, log-uniform, and no signal-dependent part
    clipped_share: float = 0.2  # crops brightened up to clipped_gain and clipped before the blur
    clipped_gain: float = 1.6
    wrong_kernel_share: float = 0.0  # planes deconvolved with a perturbed kernel (see the campaign README)
    kernel_error: float = 0.3  # perturbation sigma up to this times the kernel's peak
    stage_weight: float = 0.1  # weight of the earlier stages' mean loss
    fast_lr_factor: float = 10.0  # learning-rate factor of FAST_PARAMETERS (log and logit scales)
    seed: int = 0
    val_every: int = 250
    val_count: int = 24
    log_every: int = 20


def perturb_kernels(kernels: torch.Tensor, generator: torch.Generator, share: float, error: float) -> torch.Tensor:
    """A `share` of the kernels (N, K, K) with noise of up to `error` x their peak on and beside their support."""
    n = kernels.shape[0]
    chosen = (torch.rand(n, generator=generator) < share).float()[:, None, None]
    strength = torch.rand(n, generator=generator)[:, None, None] * error * kernels.amax((1, 2), keepdim=True)
    near = F.max_pool2d((kernels > 0).float()[:, None], 5, stride=1, padding=2)[:, 0]
    noise = torch.randn(kernels.shape, generator=generator) * strength * near
    perturbed = (kernels + chosen * noise).clamp_min(0)
    return perturbed / perturbed.sum((1, 2), keepdim=True).clamp_min(1e-12)


def trim_kernels(kernels: torch.Tensor) -> torch.Tensor:
    """The batch's kernels (N, K, K) cut to the smallest centred square that holds all of them: photos
    are padded by the kernel's size, so a 9 px shake in a 35 px array would cost 4x the pixels."""
    size = kernels.shape[-1]
    centre = size // 2
    rows, cols = torch.nonzero(kernels.amax(0) > 0, as_tuple=True)
    radius = int(max((rows - centre).abs().max(), (cols - centre).abs().max())) if rows.numel() else 0
    return kernels[:, centre - radius:centre + radius + 1, centre - radius:centre + radius + 1].contiguous()


def make_batch(photos: list[np.ndarray], config: DeconvolutionTrainConfig, generator: torch.Generator):
    """(padded blurry planes, kernels given, sigma given, sharp planes, top, left) for one step."""
    size = kernel_synthesis.MAX_KERNEL
    crops = []
    for _ in range(config.batch_size):
        photo = photos[torch.randint(0, len(photos), (1,), generator=generator).item()]
        (crop,) = augment(random_crop([photo], config.crop + size - 1, generator), generator)
        channel = torch.randint(0, 3, (1,), generator=generator).item()
        crops.append(crop[channel:channel + 1].float() / 255)
    sharp = torch.stack(crops)
    n = sharp.shape[0]
    gain = 1 + (config.clipped_gain - 1) * torch.rand(n, generator=generator)
    clipped = torch.rand(n, generator=generator) < config.clipped_share
    # bright lights saturate the sensor after the blur, so the blurry plane is not k * target there
    scene = torch.where(clipped[:, None, None, None], sharp * gain[:, None, None, None], sharp)
    kernels = kernel_synthesis.motion_kernels(n, generator, size=size)
    blurry = kernel_synthesis.blur_valid(scene, kernels)
    clean = (torch.rand(n, generator=generator) < config.clean_share)[:, None, None, None]
    sigma = torch.where(clean, _log_uniform(config.clean_noise, n, generator), _log_uniform(config.noise, n, generator))
    shot = torch.where(clean, 0.0, config.shot_max * torch.rand(n, generator=generator)[:, None, None, None])
    std = (sigma**2 + shot * blurry.clamp(0, 1)).sqrt()
    blurry = blurry + std * torch.randn(blurry.shape, generator=generator)
    blurry = (blurry.clamp(0, 1) * 255).round() / 255
    margin = (size - 1) // 2
    target = scene[..., margin:-margin, margin:-margin].clamp(max=1)
    given = trim_kernels(perturb_kernels(kernels, generator, config.wrong_kernel_share, config.kernel_error))
    padded, top, left = pad_for_fft(blurry, given)
    return padded, given, noise_sigmas(blurry), target, top, left


def _log_uniform(bounds: tuple, n: int, generator: torch.Generator) -> torch.Tensor:
    low, high = (math.log(v) for v in bounds)
    return torch.exp(low + (high - low) * torch.rand(n, generator=generator))[:, None, None, None]


def _mse(output, target, top, left):
    """The mean squared error of each plane (N,) inside the crop."""
    height, width = target.shape[-2:]
    return (output[..., top:top + height, left:left + width] - target).square().flatten(1).mean(1)


def _log_error(output, target, top, left):
    """Mean log MSE over the planes: every plane's PSNR counts alike. A plain MSE lets the noisy planes,
    whose errors are ten times larger, decide everything: that network lost 1.1-1.5 dB on clean photos."""
    return _mse(output, target, top, left).clamp_min(1e-10).log().mean()


class DeconvolutionTrainer:
    def __init__(self, config: DeconvolutionTrainConfig, photos: list[np.ndarray], validation: list[np.ndarray],
                 run_dir: RunDir):
        self.config, self.photos, self.run_dir = config, photos, run_dir
        self.network = DeconvolutionNetwork(**config.network)
        self.ema = copy.deepcopy(self.network).requires_grad_(False)
        # sizes (filter scales, omega) and shrinkage gains live on log and logit scales, where a step of
        # lr is a negligible change; the filters' directions are unit vectors, where it is not
        named = list(self.network.named_parameters())
        fast = [p for name, p in named if name.split(".")[-1] in FAST_PARAMETERS]
        slow = [p for name, p in named if name.split(".")[-1] not in FAST_PARAMETERS]
        self.optimizer = torch.optim.Adam([{"params": slow, "lr_factor": 1.0},
                                           {"params": fast, "lr_factor": config.fast_lr_factor}], lr=config.lr)
        self.step = 0
        generator = torch.Generator().manual_seed(12345)  # fixed: validation compares across runs
        val_config = DeconvolutionTrainConfig(**{**asdict(config), "batch_size": config.val_count})
        self.validation = make_batch(validation, val_config, generator)

    def state(self) -> dict:
        return {"step": self.step, "network": self.network.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state(self, state: dict) -> None:
        self.step = int(state["step"])
        self.network.load_state_dict(state["network"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])

    def save(self) -> None:
        self.run_dir.save_state(self.state())
        self.run_dir.save_model(self.ema.state_dict(), ARCH, self.network.config, self.step)

    def train_step(self) -> dict:
        config = self.config
        padded, given, sigma, target, top, left = make_batch(self.photos, config, step_generator(config.seed, self.step))
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * group["lr_factor"] * cosine_after_warmup(self.step, config.warmup, config.steps,
                                                                               config.min_lr_ratio)
        outputs = self.network(padded, given, sigma, every_stage=True)
        final = _log_error(outputs[-1], target, top, left)
        earlier = (torch.stack([_log_error(o, target, top, left) for o in outputs[:-1]]).mean()
                   if len(outputs) > 1 else 0)
        loss = final + config.stage_weight * earlier
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), config.clip)
        self.optimizer.step()
        update_ema(self.ema, self.network, self.step, config.ema)
        self.step += 1
        return {"step": self.step, "loss": loss.item(), "train_psnr": -10 / math.log(10) * final.item()}

    def validate(self) -> dict:
        """PSNR and SSIM of the EMA weights on the fixed held-out planes, beside the blurry planes'."""
        padded, given, sigma, target, top, left = self.validation
        with torch.no_grad():
            output = self.ema(padded, given, sigma)
        height, width = target.shape[-2:]
        restored, blurry = (t[..., top:top + height, left:left + width].clamp(0, 1) for t in (output, padded))
        return {"kind": "val", "step": self.step,
                "val_psnr": psnr(restored, target).mean().item(), "val_ssim": ssim(restored, target).mean().item(),
                "blurry_psnr": psnr(blurry, target).mean().item(), "blurry_ssim": ssim(blurry, target).mean().item()}

    def run(self, on_event=lambda event: None) -> dict:
        """Train until config.steps, validating and saving every val_every steps (the view's events)."""
        config = self.config
        last = self.validate() if self.step == 0 else None
        if last:
            self.run_dir.log(last)
            on_event(last)
        window_start, window_steps = time.perf_counter(), 0
        while self.step < config.steps:
            terms = self.train_step()
            window_steps += 1
            if self.step % config.log_every == 0 or self.step == config.steps:
                elapsed = time.perf_counter() - window_start
                rate = window_steps / elapsed if elapsed > 0 else 0.0
                record = {"kind": "train", **terms, "lr": self.optimizer.param_groups[0]["lr"], "it_per_s": rate,
                          "eta_s": (config.steps - self.step) / rate if rate else None}
                self.run_dir.log(record)
                on_event(record)
                window_start, window_steps = time.perf_counter(), 0
            if self.step % config.val_every == 0 or self.step == config.steps:
                last = self.validate()
                self.run_dir.log(last)
                on_event(last)
                self.save()
                on_event({"kind": "saved", "step": self.step, "path": str(self.run_dir.model_file)})
        return {"step": self.step, "validation": last, "config": asdict(config)}


def start_deconvolution_run(config: DeconvolutionTrainConfig | None, sharp: list, run_dir: Path,
                            resume: bool = False, steps: int | None = None, on_event=lambda event: None) -> dict:
    """Train (or resume, reading the config and folders from the run folder) on folders of sharp photos.

    A few photos are held out for validation; Ctrl-C and SIGTERM save before stopping.
    """
    from deblur.training.session import HOLDOUT, _sigterm_as_interrupt
    from deblur.training.trainer import TrainingInterrupted

    run = RunDir(run_dir)
    if resume:
        saved = run.read_config()
        tuples = {key: tuple(value) for key, value in saved["train"].items() if isinstance(value, list)}
        config = DeconvolutionTrainConfig(**{**saved["train"], **tuples})
        config.steps = config.steps if steps is None else steps
        sharp = saved["data"]["sharp"]
    elif run.has_run():
        raise UsageError(f"'{run.path}' already holds a training run; continue it with --resume {run.path}, "
                         "or choose another --output")
    if not sharp:
        raise UsageError("no training data: the deconvolution trains on sharp photos, give --sharp DIR")
    report = DataReport()
    for folder in sharp:
        report.add(load_sharp(Path(folder), config.crop))
    refuse_problems(report.problems)
    training, held = split_holdout(report.examples, min(HOLDOUT, len(report.examples) // 10))
    if not held:
        on_event({"kind": "warning", "text": "validating on training photos: too few to hold any out (it takes 10)"})
    photos = [e.images()[0] for e in training]
    trainer = DeconvolutionTrainer(config, photos, [e.images()[0] for e in held] or photos, run)
    if resume:
        trainer.load_state(run.load_state("cpu"))
    else:
        run.write_config({"arch": ARCH, "train": asdict(config), "data": {"sharp": [str(f) for f in sharp]}})
    on_event({"kind": "start", "run_dir": str(run.path), "device": "cpu", "precision": "fp32", "world_size": 1,
              "step": trainer.step, "steps": config.steps, "paired": 0, "sharp": len(training),
              "validation": len(held)})
    with _sigterm_as_interrupt():
        try:
            summary = trainer.run(on_event)
        except KeyboardInterrupt:
            trainer.save()
            raise TrainingInterrupted(trainer.step) from None
    return {**summary, "run_dir": str(run.path), "model": str(run.model_file)}
