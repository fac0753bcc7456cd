"""Cutting a photo into overlapping tiles and blending the results back without seams.

Tile origins are multiples of the network's size multiple, so every tile sees the same
down-sampling grid as the whole photo would; neighbouring tiles overlap and are blended with
complementary raised-cosine ramps (they sum to one), so a tiled result matches the untiled one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_TILE = 64
MAX_TILE_CPU = 384  # measured: per-pixel CPU speed falls with tile size (cache); 384 nets the most
MAX_TILE_GPU = 2048


@dataclass(frozen=True)
class Tile:
    y0: int
    y1: int
    x0: int
    x1: int


def _align_down(value: int, multiple: int) -> int:
    return value // multiple * multiple


def span_size(length: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """The smallest aligned span size that covers `length` with as many spans as `tile` needs."""
    if length <= tile:
        return length
    count = math.ceil((length - overlap) / (tile - overlap))
    return -(-(math.ceil((length - overlap) / count) + overlap) // multiple) * multiple  # aligned up


def axis_spans(length: int, size: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Evenly spread [start, end) spans of `size` covering `length`, overlapping >= `overlap`."""
    if length <= size:
        return [(0, length)]
    count = math.ceil((length - overlap) / (size - overlap))
    last_start = _align_down(length - size, multiple)
    starts = sorted({_align_down(round(i * last_start / (count - 1)), multiple) for i in range(count)})
    # The last span runs to the end of the image; the others have the same size.
    return [(s, length if i == len(starts) - 1 else s + size) for i, s in enumerate(starts)]


def _ramp(width: int) -> np.ndarray:
    """Rising half of a raised cosine; ramp + ramp[::-1] == 1, and no weight is ever zero."""
    t = (np.arange(width, dtype=np.float64) + 0.5) / width
    return np.sin(0.5 * np.pi * t) ** 2


def axis_weights(spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """1-D blend weights for each span: flat in the middle, ramps where a neighbour overlaps."""
    weights = []
    for i, (start, end) in enumerate(spans):
        w = np.ones(end - start)
        if i > 0:
            shared = spans[i - 1][1] - start
            w[:shared] *= _ramp(shared)
        if i < len(spans) - 1:
            shared = end - spans[i + 1][0]
            w[end - start - shared:] *= _ramp(shared)[::-1]
        weights.append(w.astype(np.float32))
    return weights


def _grid(height: int, width: int, tile: int, overlap: int, multiple: int):
    """Row and column spans; tiles shrink to share the photo evenly (little wasted overlap)."""
    return (axis_spans(height, span_size(height, tile, overlap, multiple), overlap, multiple),
            axis_spans(width, span_size(width, tile, overlap, multiple), overlap, multiple))


def plan_tiles(height: int, width: int, tile: int, overlap: int, multiple: int = 1):
    """Yield (Tile, 2-D weight) pairs covering the image."""
    rows, cols = _grid(height, width, tile, overlap, multiple)
    row_w, col_w = axis_weights(rows), axis_weights(cols)
    for (y0, y1), wy in zip(rows, row_w):
        for (x0, x1), wx in zip(cols, col_w):
            yield Tile(y0, y1, x0, x1), np.outer(wy, wx)


def count_tiles(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> int:
    rows, cols = _grid(height, width, tile, overlap, multiple)
    return len(rows) * len(cols)


class Blender:
    """Accumulates weighted tile outputs into a host-memory image."""

    def __init__(self, height: int, width: int, channels: int):
        self.total = np.zeros((height, width, channels), np.float32)
        self.weight = np.zeros((height, width, 1), np.float32)

    def add(self, tile: Tile, pixels: np.ndarray, weight: np.ndarray) -> None:
        self.total[tile.y0:tile.y1, tile.x0:tile.x1] += pixels * weight[:, :, None]
        self.weight[tile.y0:tile.y1, tile.x0:tile.x1] += weight[:, :, None]

    def result(self) -> np.ndarray:
        self.total /= self.weight  # in place: a 24 MP photo needs no second full-size buffer
        return self.total


def auto_tile_size(free_bytes: int, bytes_per_pixel: float, multiple: int, on_gpu: bool) -> int:
    """The largest square tile whose activations fit a share of the free memory."""
    budget = free_bytes * (0.6 if on_gpu else 0.25)  # the host also holds the photo and the OS
    side = int(math.sqrt(budget / max(bytes_per_pixel, 1.0)))
    side = min(max(side, MIN_TILE), MAX_TILE_GPU if on_gpu else MAX_TILE_CPU)
    return max(_align_down(side, multiple), multiple)
