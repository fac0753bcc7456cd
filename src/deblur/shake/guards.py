"""Is an estimated kernel, and the photo deconvolved with it, to be trusted?

Blind deconvolution fails on photos it was not made for (a moving subject, blur that changes
across the frame, no blur at all, noise or clipped highlights), and then looks worse than the
input (Lai et al. 2016). Each check here returns a number and the verdict compares it with a
threshold; thresholds were set on training photos (bench/shake_guards.py), never on the
evaluation sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deblur.shake.search import kernel_extent


@dataclass(frozen=True)
class GuardThresholds:
    min_extent: int = 5  # a kernel this small (px) is no shake: nothing to remove
    min_spread: float = 1.5  # px, the kernel's radius of gyration: below it the blur is a point with a faint tail
    max_fill: float = 0.75  # share of the kernel's bounding box that is non-zero: shake paths are thin
    min_agreement: float = 0.5  # similarity of the kernel with one estimated on another region of the photo
    max_ringing: float = 4.0  # gradient energy in the input's flat areas, after / before (see `ringing`)


def spread(kernel: np.ndarray) -> float:
    """The kernel's radius of gyration in pixels: how far its mass lies from its centroid."""
    ys, xs = np.indices(kernel.shape)
    total = kernel.sum()
    cy, cx = (kernel * ys).sum() / total, (kernel * xs).sum() / total
    return float(np.sqrt((kernel * ((ys - cy) ** 2 + (xs - cx) ** 2)).sum() / total))


def fill_ratio(kernel: np.ndarray) -> float:
    """Non-zero share of the kernel's bounding box: thin for a shake path, high for a diffuse blob."""
    ys, xs = np.nonzero(kernel > 0)
    if not len(ys):
        return 1.0
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    return float(len(ys) / box)


def kernel_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Normalised cross-correlation of two kernels at their best relative shift (1: the same shape)."""
    size = max(first.shape[0], second.shape[0])
    a, b = (np.pad(k, (size - k.shape[0]) // 2) for k in (first, second))
    n = 2 * size
    correlation = np.fft.irfft2(np.fft.rfft2(a, (n, n)) * np.conj(np.fft.rfft2(b, (n, n))), (n, n))
    return float(correlation.max() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


def ringing(before: np.ndarray, after: np.ndarray) -> float:
    """Gradient energy of `after` over that of `before` where `before` is flat (its calmest 30%).

    In areas that stay flat, new gradients are ringing or amplified noise; but areas that only
    look flat because the blur smoothed their texture regain it, so a correct deconvolution also
    raises this, the more the stronger the blur (1.3-2.9 on Levin et al.'s set, and up to 1.7 on
    training photos with synthetic shake, bench/shake_guards.py). Only far larger values mean
    the result has come apart.
    """
    import cv2

    def magnitude(gray):
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        return np.sqrt(gx * gx + gy * gy)

    gray_before = np.asarray(before, np.float32).mean(axis=2)
    gray_after = np.clip(np.asarray(after, np.float32), 0, 1).mean(axis=2)
    activity = cv2.GaussianBlur(magnitude(gray_before), (0, 0), 4)
    flat = activity <= np.quantile(activity, 0.3)
    return float(magnitude(gray_after)[flat].mean() / max(magnitude(gray_before)[flat].mean(), 1e-6))


def kernel_problems(kernel: np.ndarray, thresholds: GuardThresholds = GuardThresholds()) -> list[str]:
    problems = []
    extent = kernel_extent(kernel)
    if extent < thresholds.min_extent or spread(kernel) < thresholds.min_spread:
        problems.append(f"no camera shake found (the kernel is a point {spread(kernel):.1f} px in radius)")
    elif fill_ratio(kernel) > thresholds.max_fill:
        problems.append(f"the kernel is a diffuse blob, not a shake path ({fill_ratio(kernel):.0%} of its box filled)")
    return problems
