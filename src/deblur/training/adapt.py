"""Per-image test-time adaptation by self-reblurring (Nah et al., ICLR 2022, models.md section 4.5).

With the reblurring module M_R frozen, the deblurring network M_D is tuned on random crops of one
photo to minimise ||M_R(L) - sg(L)||: a truly sharp L is a fixed point of M_R. An optional fidelity
term keeps L near the un-adapted output. The original weights come back after every photo.
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from deblur.errors import UsageError
from deblur.restorer import pad_to_multiple, rgb_batch
from deblur.training.losses import l1, self_reblur_loss

PROBE_SEED = 12345  # the fixed crops on which the loss is measured before and after


@dataclass(frozen=True)
class AdaptOptions:
    iters: int = 20
    lr: float = 5e-6
    crops: int = 4
    crop_size: int = 256
    fidelity: float = 0.0  # weight of mean|L - L0|, L0 the un-adapted output
    seed: int = 0
    keep_worse: bool = False  # keep adapted weights even when they raised the self-reblur loss

    def check(self) -> None:
        if self.iters < 0 or self.crops < 1 or self.crop_size < 16 or self.lr <= 0 or self.fidelity < 0:
            raise UsageError("--iters >= 0, --crops >= 1, --crop-size >= 16, --lr > 0 and --fidelity >= 0 please")


@dataclass
class AdaptReport:
    before: float  # self-reblur loss on the probe crops with the original weights
    after: float  # ... with the adapted weights
    iters: int
    seconds: float
    kept: bool = True  # False: the adaptation made the loss worse, so the original weights restored the photo

    def as_json(self) -> dict:
        return {"adaptation": {"self_reblur_before": round(self.before, 6), "self_reblur_after": round(self.after, 6),
                               "iters": self.iters, "seconds": round(self.seconds, 3), "kept": self.kept}}


class SelfReblurAdapter:
    def __init__(self, network: torch.nn.Module, reblur: torch.nn.Module, device: torch.device,
                 size_multiple: int, options: AdaptOptions = AdaptOptions()):
        options.check()
        self.network, self.device, self.multiple, self.options = network, torch.device(device), size_multiple, options
        self.reblur = reblur.to(self.device).eval().requires_grad_(False)  # frozen; gradients pass through

    @contextmanager
    def adapted(self, pixels: np.ndarray, on_iter: Callable[[int, int, float], None] | None = None):
        """Adapt to `pixels` (H x W x C float32) for the duration of the block; then restore the weights."""
        snapshot = copy.deepcopy(self.network.state_dict())
        try:
            report = self._adapt(rgb_batch(pixels), on_iter)
            if report.after > report.before and not self.options.keep_worse:
                # The loss is not a descent objective (its target moves): a step size too large, or a
                # weak reblurring module, can make things worse. Then restore with the original weights.
                self.network.load_state_dict(snapshot)
                report.kept = False
            yield report
        finally:
            self.network.load_state_dict(snapshot)
            self.network.eval().requires_grad_(False)

    def _crops(self, image: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
        _, _, h, w = image.shape
        size = min(self.options.crop_size, h, w)
        size -= size % self.multiple if size >= self.multiple else 0
        tops = torch.randint(0, h - size + 1, (count,), generator=generator).tolist()
        lefts = torch.randint(0, w - size + 1, (count,), generator=generator).tolist()
        batch = torch.cat([image[..., t:t + size, l:l + size] for t, l in zip(tops, lefts)])
        return pad_to_multiple(batch, self.multiple).to(self.device)

    @torch.no_grad()
    def _measure(self, crops: torch.Tensor) -> float:
        return self_reblur_loss(self.reblur, self.network(crops)).item()

    def _adapt(self, image: torch.Tensor, on_iter) -> AdaptReport:
        options = self.options
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(options.seed)
        probe = self._crops(image, options.crops, torch.Generator().manual_seed(PROBE_SEED))
        self.network.eval()
        before = self._measure(probe)
        original = copy.deepcopy(self.network).requires_grad_(False) if options.fidelity > 0 else None
        self.network.requires_grad_(True)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=options.lr)
        for step in range(1, options.iters + 1):
            crops = self._crops(image, options.crops, generator)
            deblurred = self.network(crops)
            loss = self_reblur_loss(self.reblur, deblurred)
            if original is not None:
                with torch.no_grad():
                    anchor = original(crops)
                loss = loss + options.fidelity * l1(deblurred, anchor)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_iter:
                on_iter(step, options.iters, loss.item())
        self.network.requires_grad_(False)
        after = self._measure(probe)
        return AdaptReport(before, after, options.iters, time.perf_counter() - start)
