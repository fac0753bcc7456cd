"""A blur score: how wide a photo's strongest edges are, in pixels, measured above its noise.

Blur spreads every edge over about the blur's extent, so the width of a photo's strongest edges
says how much blur it holds, whatever the scene (Marziliano et al. 2002). At the finest scale,
noise and JPEG block artefacts pass for sharp detail; so edges are measured at the smallest scale
that the photo's noise (Immerkaer's 1996 estimate) and block artefacts allow, after Elder and
Zucker (1998): a noisier or more compressed copy of a photo measures wider, never sharper.

    width = contrast across +-10 px / peak slope, at the strongest 10% of edge points
    score = the median width in the edge direction (of 4) where it is largest

in pixels: about 2.5 for a sharp photo, more with blur. A shake widens only the edges across its
path, hence the widest direction. It is
measured on up to 16 crops of 256 px spread over the photo (aligned to JPEG's 8 px blocks), so a
24 MP photo costs about as much as a 1 MP one, and is the same on every run.
"""

from __future__ import annotations

import cv2
import numpy as np

from deblur.errors import InputError

CROP = 256
GRID = 4  # up to GRID x GRID crops
RADIUS = 10  # px either side of an edge point where its contrast is read
STRONGEST = 0.1  # the share of edge points (by slope) that are measured
MIN_CONTRAST = 0.05  # an edge fainter than this (in [0, 1]) is texture or noise, not an edge
MIN_EDGES = 8  # edge points a direction needs before its median width counts
NOISE_SCALE = 0.2  # smoothing sigma (px) per noise sigma (8-bit levels): 10 levels of noise -> 2 px
BLOCK_SCALE = 2.0  # smoothing sigma (px) per unit of JPEG blockiness above BLOCK_FREE
BLOCK_FREE = 1.05  # blockiness of photos without visible JPEG blocks (1.0 = none at all)
MAX_BLOCKINESS = 3.0  # quality 30 JPEGs of Kodak24 measure 1.3-2.0
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def score_crops(pixels: np.ndarray) -> list[np.ndarray]:
    """Gray crops spread evenly over an H x W x C photo, starting on JPEG's 8 px grid (the whole photo
    when it is small)."""
    gray = pixels[..., :3] @ LUMA if pixels.shape[2] >= 3 else pixels[..., 0]
    gray = np.ascontiguousarray(gray, dtype=np.float32)
    h, w = gray.shape
    size_h, size_w = min(CROP, h), min(CROP, w)
    tops = np.linspace(0, h - size_h, min(GRID, -(-h // size_h))).astype(int) // 8 * 8
    lefts = np.linspace(0, w - size_w, min(GRID, -(-w // size_w))).astype(int) // 8 * 8
    return [gray[t:t + size_h, l:l + size_w] for t in tops for l in lefts]


def noise_sigma(crops: list[np.ndarray]) -> float:
    """The noise's standard deviation in [0, 1] units: Immerkaer's Laplacian-difference filter, with
    the median of its magnitude (robust to edges) instead of the mean."""
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    residuals = np.concatenate([np.abs(cv2.filter2D(crop, -1, mask)[1:-1, 1:-1]).ravel() for crop in crops])
    return float(np.median(residuals) * 1.4826 / 6.0)


def blockiness(crops: list[np.ndarray]) -> float:
    """How much larger steps are across JPEG's 8 px block borders than elsewhere (1.0: no blocks)."""
    ratios = []
    for crop in crops:
        for steps in (np.abs(np.diff(crop, axis=1)), np.abs(np.diff(crop, axis=0)).T):
            border = np.arange(steps.shape[1]) % 8 == 7
            if border.any() and (~border).any():
                # floors: a flat synthetic picture has no steps between borders, and that is no JPEG
                ratios.append(steps[:, border].mean() / max(steps[:, ~border].mean(), 0.002))
    return min(float(np.mean(ratios)), MAX_BLOCKINESS) if ratios else 1.0


def measurement_scale(crops: list[np.ndarray]) -> float:
    """The smoothing sigma, in px, above which noise and block artefacts no longer look like edges."""
    return (max(1.0, NOISE_SCALE * noise_sigma(crops) * 255)
            + BLOCK_SCALE * max(0.0, blockiness(crops) - BLOCK_FREE))


def edge_widths(gray: np.ndarray, scale: float) -> list[np.ndarray]:
    """Widths (px) of the strongest edge points of one gray crop smoothed at `scale`, one array per
    edge direction (4 bins of 45 degrees): a shake widens only the edges across its path."""
    smooth = cv2.GaussianBlur(gray, (0, 0), scale)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8
    slope = np.hypot(gx, gy)
    direction = ((np.rad2deg(np.arctan2(gy, gx)) + 180 + 22.5) % 180 // 45).astype(int)
    ridge = _ridge(slope, direction)
    widths = []
    for index in range(4):
        ys, xs = np.nonzero(ridge & (direction == index))
        if len(ys) == 0:
            widths.append(np.zeros(0, np.float32))
            continue
        strongest = slope[ys, xs] >= np.quantile(slope[ys, xs], 1 - STRONGEST)
        ys, xs = ys[strongest], xs[strongest]
        peak = slope[ys, xs]
        ux, uy = gx[ys, xs] / peak, gy[ys, xs] / peak
        contrast = (_sample(smooth, xs + RADIUS * ux, ys + RADIUS * uy)
                    - _sample(smooth, xs - RADIUS * ux, ys - RADIUS * uy))
        edges = contrast >= MIN_CONTRAST
        widths.append(contrast[edges] / peak[edges])
    return widths


def _ridge(slope: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Points where the slope peaks across the edge (non-maximum suppression along the 4 directions),
    away from the border by more than RADIUS."""
    h, w = slope.shape
    padded = np.pad(slope, 1)
    ridge = np.zeros((h, w), bool)
    for index, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        behind = padded[1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        ridge |= (direction == index) & (slope >= ahead) & (slope >= behind) & (slope > 0)
    border = RADIUS + 2
    ridge[:border], ridge[-border:], ridge[:, :border], ridge[:, -border:] = False, False, False, False
    return ridge


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return cv2.remap(image, x.astype(np.float32)[None], y.astype(np.float32)[None], cv2.INTER_LINEAR)[0]


def blur_score(pixels: np.ndarray) -> float:
    """The blur score of an H x W x C photo in [0, 1]: the median width of its strongest edges, in
    pixels, in the edge direction where they are widest (the direction of the shake, if any).

    InputError for a photo without edges to measure (flat, or smaller than about 24 px)."""
    crops = score_crops(pixels)
    scale = measurement_scale(crops)
    per_crop = [edge_widths(crop, scale) for crop in crops]
    by_direction = [np.concatenate([widths[index] for widths in per_crop]) for index in range(4)]
    measured = [np.median(widths) for widths in by_direction if len(widths) >= MIN_EDGES]
    if not measured:
        raise InputError("no edges strong enough to measure blur (a flat or tiny photo)")
    return float(max(measured))
