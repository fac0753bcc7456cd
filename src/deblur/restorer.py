"""The inference pipeline: pixels -> tiles -> sampler on the device -> blended pixels.

The whole photo stays in host memory; only one tile at a time goes to the device. On
out-of-memory the tile size halves and the photo is retried; a tile whose low-precision output
is not finite is recomputed in fp32, and one still not finite fails the photo.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from deblur import devices, tiling
from deblur.threads import threads_now, using_threads
from deblur.devices import DeviceChoice
from deblur.errors import DeblurError, UsageError

DEFAULT_OVERLAP = 32


@dataclass
class RestoreReport:
    tile: int | None  # the tile size finally used (None: the photo was solved whole)
    tiles: int
    warnings: list[str]
    details: dict = field(default_factory=dict)  # what the method reports in the JSON summary
    kernel: np.ndarray | None = None  # the blur kernel a deconvolution used, if any


class Restorer:
    """Runs one sampler over photos of any size on one device.

    `predict` maps a padded NCHW tensor in [0, 1] to the restored tensor (a sampler from
    samplers.py). `multiple` is the network's size multiple; `bytes_per_pixel` its rough
    activation memory, used to choose a tile size when `tile` is None.
    """

    def __init__(self, predict: Callable[[torch.Tensor], torch.Tensor], choice: DeviceChoice,
                 multiple: int = 1, bytes_per_pixel: float = 4096.0, tile: int | None = None,
                 overlap: int = DEFAULT_OVERLAP):
        if tile is not None and tile < multiple:
            raise UsageError(f"--tile {tile} is smaller than the model's size multiple {multiple}")
        self.predict = predict
        self.choice = choice
        self.multiple = multiple
        self.bytes_per_pixel = bytes_per_pixel
        self.requested_tile = tile
        self.overlap = overlap
        self.tile_limit: int | None = None  # lowered by out-of-memory, kept for the next photos

    def initial_tile_size(self) -> int:
        if self.requested_tile:
            tile = self.requested_tile // self.multiple * self.multiple
        else:
            free = devices.free_memory_bytes(self.choice.device)
            tile = tiling.auto_tile_size(free, self.bytes_per_pixel, self.multiple, self.choice.device.type != "cpu")
        return min(tile, self.tile_limit or tile)

    def restore(self, pixels: np.ndarray, on_tile: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, RestoreReport]:
        """Restore H x W x C float32 pixels (C = 1 or 3); return the result and a report."""
        gray = pixels.shape[2] == 1
        if gray:  # the networks are RGB: run the gray image replicated, average back
            pixels = np.repeat(pixels, 3, axis=2)
        warnings: list[str] = []
        tile = self.initial_tile_size()
        # the CPU's intra-op threads: the cores free now (a busy machine's cores cost 4x, threads.py)
        threads = using_threads(threads_now()) if self.choice.device.type == "cpu" else contextlib.nullcontext()
        with threads:
            out, tile, count = self._restore_backing_off(pixels, tile, warnings, on_tile)
        np.clip(out, 0.0, 1.0, out=out)
        if gray:
            out = out.mean(axis=2, keepdims=True)
        return out, RestoreReport(tile=tile, tiles=count, warnings=warnings)

    def _restore_backing_off(self, pixels, tile, warnings, on_tile):
        """The tiled restoration, its tile halved on out-of-memory: (pixels, final tile, tile count)."""
        while True:
            try:
                out, count = self._restore_tiled(pixels, tile, warnings, on_tile)
                break
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried
                if not devices.is_out_of_memory(exc):
                    raise
                devices.empty_cache(self.choice.device)
                smaller = tile // 2 // self.multiple * self.multiple
                if smaller < tiling.MIN_TILE:
                    raise DeblurError(
                        f"out of memory on {self.choice.device} even with {tile} px tiles; "
                        "close other programs, use --device cpu, or use a smaller model"
                    ) from None
                warnings.append(f"out of memory with {tile} px tiles; retrying with {smaller} px tiles")
                tile = self.tile_limit = smaller
        return out, tile, count

    def _restore_tiled(self, pixels, tile, warnings, on_tile):
        height, width, channels = pixels.shape
        overlap = min(self.overlap, tile // 4)
        total = tiling.count_tiles(height, width, tile, overlap, self.multiple)
        blender = tiling.Blender(height, width, channels)
        for done, (t, weight) in enumerate(tiling.plan_tiles(height, width, tile, overlap, self.multiple), 1):
            result = self.run_tile(pixels[t.y0:t.y1, t.x0:t.x1], warnings, origin=(t.y0, t.x0))
            blender.add(t, result, weight)
            if on_tile:
                on_tile(done, total)
        return blender.result(), total

    def run_tile(self, tile: np.ndarray, warnings: list[str], origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """One tile through the sampler: pad to the size multiple, predict, crop back.

        `origin` is the tile's top-left pixel in the photo: a stochastic sampler draws its noise
        there, so overlapping tiles agree."""
        x = rgb_batch(tile).to(self.choice.device)
        height, width = x.shape[2:]
        x = pad_to_multiple(x, self.multiple)
        if devices.uses_channels_last(x.device):
            x = x.contiguous(memory_format=torch.channels_last)
        y = self._predict(x, self.choice.precision, origin)
        if not torch.isfinite(y).all() and self.choice.precision != "fp32":
            warnings.append(f"{self.choice.precision} gave non-finite values in a tile; recomputed it in fp32")
            y = self._predict(x, "fp32", origin)
        if not torch.isfinite(y).all():  # written out, NaN becomes black: fail the photo instead
            raise DeblurError("the model gave NaN or infinite values for this photo even in fp32, so nothing "
                              "was written; its weights may be damaged: check them with `deblur models verify` "
                              "or use another --model")
        return y[0, :, :height, :width].permute(1, 2, 0).float().cpu().numpy()

    def _predict(self, x: torch.Tensor, precision: str, origin: tuple[int, int]) -> torch.Tensor:
        autocast = contextlib.nullcontext()
        if precision != "fp32":
            autocast = torch.autocast(x.device.type, dtype=devices.DTYPES[precision])
        with torch.inference_mode(), autocast:
            return self.predict(x, origin).float()


def rgb_batch(pixels: np.ndarray) -> torch.Tensor:
    """H x W x C float32 pixels (C = 1 or 3) as the 1 x 3 x H x W tensor the networks take (gray replicated)."""
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad an NCHW tensor at the bottom/right to a multiple of `multiple` (reflect when possible)."""
    height, width = x.shape[2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
