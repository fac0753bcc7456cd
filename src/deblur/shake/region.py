"""Where to estimate the kernel: a window of strong edges in every direction, free of clipped pixels.

Like Photoshop's blur estimation region. Edges of one direction only leave the kernel undetermined
along them, and clipped highlights break the linear blur model, so the score of a window is the
smaller eigenvalue of its gradients' structure tensor, with windows holding clipped pixels last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deblur.errors import UsageError

DEFAULT_SIZE = 512  # px; larger regions estimate slower and, measured, no better
CLIPPED = 0.98  # a pixel this bright (or 1 - this dark) in any channel has probably lost its value
CLIPPED_SHARE = 0.002  # windows with more clipped pixels than this are used only if nothing better exists


@dataclass(frozen=True)
class Region:
    x: int
    y: int
    width: int
    height: int

    def crop(self, pixels: np.ndarray) -> np.ndarray:
        return pixels[self.y:self.y + self.height, self.x:self.x + self.width]

    def as_text(self) -> str:
        return f"{self.x},{self.y},{self.width},{self.height}"


def parse_region(text: str, height: int | None = None, width: int | None = None) -> Region:
    """'X,Y,W,H' in pixels; checked against the photo's size when it is given."""
    try:
        x, y, w, h = (int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--region takes X,Y,W,H in whole pixels, got '{text}'") from None
    if x < 0 or y < 0 or w < 32 or h < 32:
        raise UsageError(f"--region {text}: X and Y must be >= 0 and the region at least 32 x 32 px")
    region = Region(x, y, w, h)
    if height is not None and (x + w > width or y + h > height):
        raise UsageError(f"--region {text} reaches beyond the {width} x {height} photo")
    return region


def choose_region(pixels: np.ndarray, size: int = DEFAULT_SIZE) -> Region:
    """The best `size` x `size` window (or the whole photo when it is smaller) for kernel estimation."""
    import cv2

    height, width = pixels.shape[:2]
    win_h, win_w = min(size, height), min(size, width)
    if (win_h, win_w) == (height, width):
        return Region(0, 0, width, height)
    gray = pixels.mean(axis=2).astype(np.float32)
    clipped = ((pixels >= CLIPPED) | (pixels <= 1 - CLIPPED)).any(axis=2).astype(np.float32)
    # Score on a half-size copy: less noise in the gradients, 4x less work.
    small = cv2.resize(gray, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    box = (max(1, win_w // 2), max(1, win_h // 2))
    a, b, c = (cv2.boxFilter(t, -1, box, normalize=True, borderType=cv2.BORDER_CONSTANT) for t in (gx * gx, gx * gy, gy * gy))
    smallest = (a + c) / 2 - np.sqrt(((a - c) / 2) ** 2 + b**2)
    clip_share = cv2.boxFilter(cv2.resize(clipped, (width // 2, height // 2), interpolation=cv2.INTER_AREA), -1,
                               box, normalize=True, borderType=cv2.BORDER_CONSTANT)
    # box centres that keep the whole window inside the photo
    half_h, half_w = box[1] // 2, box[0] // 2
    ys = np.arange(half_h, small.shape[0] - (box[1] - half_h) + 1)
    xs = np.arange(half_w, small.shape[1] - (box[0] - half_w) + 1)
    if not len(ys) or not len(xs):
        return Region(0, 0, win_w, win_h)
    score = smallest[np.ix_(ys, xs)]
    score = np.where(clip_share[np.ix_(ys, xs)] > CLIPPED_SHARE, score - score.max() - 1, score)
    iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
    x = int(np.clip((xs[ix] - half_w) * 2, 0, width - win_w))
    y = int(np.clip((ys[iy] - half_h) * 2, 0, height - win_h))
    return Region(x, y, win_w, win_h)
