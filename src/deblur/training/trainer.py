"""The training loop: any deblurring network, optionally with the reblurring losses of Nah et al.

Each step (models.md section 4.4): L = M_D(B); M_R is updated on L_Blur + L_Sharp with L detached;
then M_D is updated on L1 (+ FFT) + lambda * ||M_R(L) - M_R(S)|| with M_R frozen. Separate
optimisers, the same warm-up + cosine (or step) schedule, gradient clipping, an EMA of M_D's
weights (validated and saved), mixed precision on CUDA and bf16 on CPUs that compute it natively
(master weights, optimisers and EMA stay fp32), distributed data parallel under torchrun.

The library reports through `on_event(dict)`; it never prints.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import torch

from deblur import devices
from deblur.archs.registry import REBLUR, build_network, get_arch
from deblur.errors import UsageError
from deblur.metrics import psnr, ssim
from deblur.restorer import pad_to_multiple
from deblur.training import distributed
from deblur.training.kernels import blur_settings
from deblur.training.losses import fft_loss, l1, reblur_module_loss, supervised_reblur_loss
from deblur.training.run_dir import RunDir
from deblur.training.synthesis import PIPELINES


@dataclass
class TrainConfig:
    arch: str = "xydeblur"
    config: dict = field(default_factory=dict)  # the network's settings; missing ones: the arch's defaults
    steps: int = 20000
    batch_size: int = 8  # per process
    crop: int = 128
    lr: float = 2e-4
    optimizer: str = "adamw"  # adam | adamw
    weight_decay: float = 0.0
    warmup: int | None = None  # None: the session's default (500, finetune 100), at most a tenth of the run
    schedule: str = "cosine"  # cosine | step (halve every step_every)
    step_every: int = 5000
    min_lr_ratio: float = 0.01
    clip: float = 1.0  # gradient norm; 0 turns clipping off
    ema: float = 0.999  # 0 turns the EMA off
    fft_weight: float = 0.1
    reblur_weight: float | None = None  # lambda; 0: no reblurring module; None: 1 (direct) or 0 (diffusion)
    predictor_weight: float = 0.0  # DvSR only, our addition: lambda_g * |g(y) - x0|; the paper has none
    freeze_predictor: bool = False  # DvSR only: keep g as it is (a trained deblurrer) and train the denoiser
    val_diffusion_steps: int = 10  # DvSR only: also validate sampling with this many steps (0: predictor only)
    reblur_config: dict = field(default_factory=lambda: dict(REBLUR.default_config))
    reblur_lr: float = 1e-4
    synthesis: str = "srgb"  # how sharp photos are blurred: srgb, or camera (linear light, noise, rotation)
    blur: dict = field(default_factory=dict)  # BlurSettings fields changed from their defaults (--blur KEY=VALUE)
    frames_share: float = 0.3  # share of steps drawn from --frames clips when other data is given too
    amp: bool = True  # mixed precision where it helps: CUDA, and CPUs with native bf16; False forces fp32
    seed: int = 0
    val_every: int = 500
    val_count: int = 8
    val_crop: int = 256
    log_every: int = 20

    def check(self) -> None:
        if self.reblur_weight is None:
            self.reblur_weight = 1.0 if get_arch(self.arch).objective == "direct" else 0.0
        if self.optimizer not in ("adam", "adamw"):
            raise UsageError(f"unknown optimizer '{self.optimizer}'; use adam or adamw")
        if self.schedule not in ("cosine", "step"):
            raise UsageError(f"unknown schedule '{self.schedule}'; use cosine or step")
        spec = get_arch(self.arch)
        unknown = sorted(set(self.config) - set(spec.config_keys))
        if unknown:
            raise UsageError(f"--config {unknown[0]}=... is not a setting of {self.arch}; "
                             f"its settings: {', '.join(spec.config_keys)}")
        if self.synthesis not in PIPELINES:
            raise UsageError(f"unknown --synthesis '{self.synthesis}'; use {' or '.join(PIPELINES)}")
        try:
            blur = blur_settings(self.blur)
        except ValueError as error:
            raise UsageError(f"--blur {error}") from None
        self.blur = {key: getattr(blur, key) for key in self.blur}  # parsed: the run's config.json shows numbers
        if self.freeze_predictor and spec.objective != "diffusion":
            raise UsageError(f"--freeze-predictor is for dvsr, whose predictor and denoiser are two networks; "
                             f"{self.arch} is one")
        if self.freeze_predictor and self.predictor_weight > 0:
            raise UsageError("--predictor-weight trains the predictor, which --freeze-predictor keeps fixed; "
                             "give one of them")
        if not 0 <= self.frames_share <= 1:
            raise UsageError(f"--frames-share must be between 0 and 1, got {self.frames_share}")
        multiple = spec.size_multiple
        if self.crop % multiple or self.crop < 16:
            raise UsageError(f"--crop must be at least 16 and a multiple of {multiple} for {self.arch}")
        for name in ("steps", "batch_size", "val_every", "log_every"):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive")


class TrainingInterrupted(Exception):
    """Ctrl-C: the run was saved at `step` and can be resumed."""

    def __init__(self, step: int):
        super().__init__(f"interrupted at step {step}")
        self.step = step


def lr_factor(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio (or halving every step_every steps)."""
    warmup = config.warmup or 0
    if step < warmup:
        return (step + 1) / warmup
    if config.schedule == "step":
        return 0.5 ** ((step - warmup) // max(config.step_every, 1))
    return cosine_after_warmup(step, warmup, config.steps, config.min_lr_ratio)


def cosine_after_warmup(step: int, warmup: int, steps: int, min_ratio: float) -> float:
    """The learning-rate factor: linear warm-up over `warmup` steps, then cosine decay to `min_ratio`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(steps - warmup, 1))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def update_ema(ema: torch.nn.Module, network: torch.nn.Module, step: int, max_decay: float) -> None:
    """Move the averaged weights towards the network's; a young average follows quickly."""
    decay = min(max_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for averaged, current in zip(ema.state_dict().values(), network.state_dict().values()):
            if averaged.dtype.is_floating_point:
                averaged.lerp_(current, 1 - decay)
            else:
                averaged.copy_(current)


class Trainer:
    def __init__(self, config: TrainConfig, batches, validation, run_dir: RunDir, device: torch.device,
                 init_state: dict | None = None, init_reblur: dict | None = None, init_predictor: dict | None = None):
        config.check()
        self.config, self.batches, self.run_dir, self.device = config, batches, run_dir, torch.device(device)
        self.validation = validation  # (blurry, sharp) CPU tensors, or None
        self.spec = get_arch(config.arch)
        self.dist = distributed.current()
        torch.manual_seed(config.seed)  # the same initial weights on every process

        self.network = build_network(config.arch, config.config)
        if init_state is not None:
            try:
                self.network.load_state_dict(init_state)
            except RuntimeError as exc:  # e.g. finetune --config width=... that the weights cannot take
                first = str(exc).strip().splitlines()[-1].strip()
                raise UsageError(f"the starting weights do not fit the settings {config.config} ({first}); "
                                 f"drop the --config that changes the network's shape") from None
        if init_predictor is not None:  # DvSR: its predictor from a trained deblurrer
            self.network.predictor.load_state_dict(init_predictor)
        if config.freeze_predictor:
            self.network.predictor.requires_grad_(False)
        self.network = devices.prepare_network(self.network, self.device)
        self.model = self.dist.wrap(self.network)
        self.opt = self._optimizer([p for p in self.network.parameters() if p.requires_grad], config.lr)

        self.reblur = self.reblur_model = self.opt_reblur = None
        if config.reblur_weight > 0:
            self.reblur = build_network("reblur", config.reblur_config)
            if init_reblur is not None:
                self.reblur.load_state_dict(init_reblur)
            self.reblur = devices.prepare_network(self.reblur, self.device)
            self.reblur_model = self.dist.wrap(self.reblur)
            self.opt_reblur = self._optimizer(self.reblur.parameters(), config.reblur_lr)

        self.ema = copy.deepcopy(self.network).requires_grad_(False) if config.ema > 0 else None
        self.diffusion = self.spec.objective == "diffusion"
        self.autocast_dtype = self._autocast_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.step = 0
        self._blurry_record = None  # the blurry input's validation scores, measured once

    # -- set-up ------------------------------------------------------------------------------------

    def _optimizer(self, params, lr):
        kind = torch.optim.AdamW if self.config.optimizer == "adamw" else torch.optim.Adam
        return kind(params, lr=lr, weight_decay=self.config.weight_decay)

    def _autocast_dtype(self):
        if not self.config.amp:
            return None
        if self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.device.type == "cpu" and devices.cpu_has_native_bf16():
            return torch.bfloat16  # measured 2-3x faster than fp32 with channels-last (AVX-512 BF16)
        return None

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # -- state -------------------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "step": self.step,
            "network": self.network.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "reblur": None if self.reblur is None else self.reblur.state_dict(),
            "reblur_optimizer": None if self.opt_reblur is None else self.opt_reblur.state_dict(),
            "scaler": self.scaler.state_dict(),
            "arch": self.config.arch,
            "config": dict(self.config.config),
        }

    def load_state(self, state: dict) -> None:
        if state["arch"] != self.config.arch or state["config"] != self.config.config:
            raise UsageError(f"the saved run is {state['arch']} {state['config']}, not "
                             f"{self.config.arch} {self.config.config}")
        self.network.load_state_dict(state["network"])
        self.opt.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        if self.reblur is not None and state["reblur"] is not None:
            self.reblur.load_state_dict(state["reblur"])
            self.opt_reblur.load_state_dict(state["reblur_optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])

    def _weights_to_use(self) -> torch.nn.Module:
        """What is validated and saved: the EMA of the weights when there is one."""
        return self.ema if self.ema is not None else self.network

    def save(self) -> None:
        """The usable checkpoint (EMA weights + M_R) and the resume state; only the first process writes."""
        if not self.dist.is_main:
            return
        weights = self._weights_to_use().state_dict()
        reblur = None if self.reblur is None else (self.reblur.state_dict(), dict(self.config.reblur_config))
        self.run_dir.save_model(weights, self.config.arch, self.config.config, self.step, reblur)
        self.run_dir.save_state(self.state())

    # -- the loop ----------------------------------------------------------------------------------

    def train_step(self, blurry: torch.Tensor, sharp: torch.Tensor) -> dict:
        config = self.config
        for group in self.opt.param_groups:
            group["lr"] = config.lr * lr_factor(config, self.step)
        terms = {}
        with self._autocast():
            if self.diffusion:
                levels, noise = self._noise_for(blurry)
                deblurred, predicted_noise = self.model(blurry, sharp, levels, noise)
            else:
                deblurred = self.model(blurry)

        if self.reblur is not None:
            for group in self.opt_reblur.param_groups:
                group["lr"] = config.reblur_lr * lr_factor(config, self.step)
            with self._autocast():
                blur_term, sharp_term = reblur_module_loss(self.reblur_model, deblurred, blurry, sharp)
            self.opt_reblur.zero_grad(set_to_none=True)
            self.scaler.scale(blur_term + sharp_term).backward()
            self.scaler.step(self.opt_reblur)
            terms.update(reblur_blur=blur_term.item(), reblur_sharp=sharp_term.item())

        with self._autocast():
            if self.diffusion:  # L1 on the predicted noise (Eq. 6); g learns through the residual
                loss = l1(predicted_noise.float(), noise)
                terms["noise_l1"] = loss.item()
                if config.predictor_weight > 0:
                    predictor = l1(deblurred.float(), sharp)
                    loss = loss + config.predictor_weight * predictor
                    terms["predictor_l1"] = predictor.item()
            else:
                loss = l1(deblurred.float(), sharp)
                terms["l1"] = loss.item()
            if config.fft_weight > 0 and not self.diffusion:
                fft = fft_loss(deblurred, sharp)
                loss = loss + config.fft_weight * fft
                terms["fft"] = fft.item()
            if self.reblur is not None:
                self.reblur.requires_grad_(False)  # frozen: gradients pass through it to L only
                reblur = supervised_reblur_loss(self.reblur, deblurred, sharp)
                loss = loss + config.reblur_weight * reblur
                terms["reblur"] = reblur.item()
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.reblur is not None:
            self.reblur.requires_grad_(True)
        if config.clip > 0:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), config.clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self._update_ema()
        self.step += 1
        terms["loss"] = loss.item()
        terms["lr"] = self.opt.param_groups[0]["lr"]
        return terms

    def _noise_for(self, blurry: torch.Tensor):
        """Continuous noise levels and noise for this step, drawn from (seed, step, rank) like the data."""
        from deblur.diffusion import sample_training_levels
        from deblur.training.data import step_generator

        generator = step_generator(self.config.seed + 1, self.step, self.dist.rank)
        levels = sample_training_levels(blurry.shape[0], generator, blurry.device)
        noise = torch.randn(blurry.shape, generator=generator).to(blurry.device)
        return levels, noise

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        update_ema(self.ema, self.network, self.step, self.config.ema)

    @torch.no_grad()
    def validate(self) -> dict | None:
        """PSNR/SSIM of the (EMA) network on the fixed validation crops, next to the blurry input's."""
        if self.validation is None or not self.dist.is_main:
            return None
        network = self._weights_to_use().eval()
        blurry_all, sharp_all = self.validation
        output = self._restore_each(network, blurry_all)
        record = {"kind": "val", "step": self.step, "val_psnr": psnr(output, sharp_all).mean().item(),
                  "val_ssim": ssim(output, sharp_all).mean().item(), **self._blurry_scores()}
        if self.diffusion and self.config.val_diffusion_steps:
            from deblur.samplers import diffusion

            sampled = self._restore_each(diffusion(network, self.config.val_diffusion_steps, seed=0), blurry_all)
            record["val_psnr_diffusion"] = psnr(sampled, sharp_all).mean().item()
            record["val_ssim_diffusion"] = ssim(sampled, sharp_all).mean().item()
        network.train()
        record["preview"] = str(self.run_dir.write_preview(self.step, blurry_all[0], output[0], sharp_all[0]))
        return record

    def _restore_each(self, predict, blurry_all: torch.Tensor) -> torch.Tensor:
        """Run `predict` on each validation image, padded to the size multiple, cropped back, on the CPU."""
        outputs = []
        for index in range(blurry_all.shape[0]):
            blurry = blurry_all[index:index + 1].to(self.device)
            h, w = blurry.shape[-2:]
            with self._autocast():
                outputs.append(predict(pad_to_multiple(blurry, self.spec.size_multiple))[..., :h, :w].float().cpu())
        return torch.cat(outputs)

    def _blurry_scores(self) -> dict:
        """The blurry input's PSNR/SSIM: the same at every validation, so measured once."""
        if self._blurry_record is None:
            blurry_all, sharp_all = self.validation
            self._blurry_record = {"blurry_psnr": psnr(blurry_all, sharp_all).mean().item(),
                                   "blurry_ssim": ssim(blurry_all, sharp_all).mean().item()}
        return self._blurry_record

    def run(self, on_event=lambda event: None) -> dict:
        """Train until config.steps; Ctrl-C saves and raises TrainingInterrupted."""
        config = self.config
        self.network.train()
        last = None
        window_start, window_steps = time.perf_counter(), 0
        try:
            while self.step < config.steps:
                blurry, sharp = self.batches.batch(config.seed, self.step, self.dist.rank)
                if devices.uses_channels_last(self.device):
                    blurry, sharp = (t.contiguous(memory_format=torch.channels_last) for t in (blurry, sharp))
                terms = self.train_step(blurry, sharp)
                window_steps += 1
                if self.step % config.log_every == 0 or self.step == config.steps:
                    elapsed = time.perf_counter() - window_start
                    rate = window_steps / elapsed if elapsed > 0 else 0.0
                    record = {"kind": "train", "step": self.step, **terms, "it_per_s": rate,
                              "eta_s": (config.steps - self.step) / rate if rate else None}
                    if self.dist.is_main:
                        self.run_dir.log(record)
                    on_event(record)
                    window_start, window_steps = time.perf_counter(), 0
                if self.step % config.val_every == 0 or self.step == config.steps:
                    last = self.validate() or last
                    if last and last["step"] == self.step:
                        self.run_dir.log(last)
                        on_event(last)
                    self.save()
                    on_event({"kind": "saved", "step": self.step, "path": str(self.run_dir.model_file)})
        except KeyboardInterrupt:
            self.save()
            raise TrainingInterrupted(self.step) from None
        return {"step": self.step, "validation": last, "config": asdict(config)}
