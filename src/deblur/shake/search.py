"""Blind kernel search: the kernel's size bound, then a few estimations, the one that best explains the blur.

The size comes from a probe: an estimate with a generous bound, whose support says how far the
blur reaches; too small a bound truncates the kernel (a failure), too large a one lets noise in,
so the final bound is that extent plus a margin. Then the estimation runs with two kernel solvers
that fail on different photos, and a third that keeps faint parts of the kernel, and the kernel
whose deconvolution leaves the smallest reblur residual ||k * x - y|| on the region is kept
(measured on Levin et al.'s set: the two solvers together fail far less often than either one).
The candidates are independent, so they run side by side, one thread each (deblur.threads).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from deblur.shake.deconvolve import DeconvolutionSettings, deconvolve
from deblur.shake.fourier import convolve
from deblur.shake.kernel import EstimationSettings, KernelEstimate, estimate_kernel, with_settings
from deblur.threads import parallel_map, threads_now, using_threads

MAX_SIZE = 65  # the default bound of the probe, pixels
MIN_SIZE = 11
PROBE_PIXELS = 384  # the probe runs on the region shrunk until its short side is about this
MARGINS = (4, 8, 14)  # bounds tried: the probe's measured extent plus each of these
PROBE = EstimationSettings(solver="support", scale_factor=0.5 ** 0.5, kernel_weight=20.0)
CANDIDATES = {
    "support": PROBE,
    "fourier": EstimationSettings(solver="fourier", scale_factor=0.5, kernel_weight=20.0),
    # A hand that dwells, then sweeps fast, leaves a bright blob and a faint tail; cleaning drops the
    # tail's fragments as isolated blobs (under 10% of the mass each). Keeping blobs down to 2% finds
    # it; alone that costs on other photos (training shake: clean cases +4.53 -> +3.65 dB at 5%), so
    # it is one more candidate, and the residual chooses.
    "faint": with_settings(PROBE, isolated_share=0.02),
}
SCORING = DeconvolutionSettings(data_weight=3000.0)
BORDER = 20  # pixels of the region's border left out of the residual (the FFT's wrap-around)


@dataclass
class SearchResult:
    kernel: np.ndarray
    size: int  # the bound the kernel was estimated in
    residuals: list = field(default_factory=list)  # (solver, residual) of every candidate
    probe_extent: int | None = None


def kernel_extent(kernel: np.ndarray) -> int:
    """The side of the smallest centred odd square holding every non-zero value."""
    ys, xs = np.nonzero(kernel > 0)
    centre = kernel.shape[0] // 2
    if not len(ys):
        return 1
    return 2 * int(max(np.abs(ys - centre).max(), np.abs(xs - centre).max())) + 1


def probe(region: np.ndarray, max_size: int = MAX_SIZE) -> tuple[int, KernelEstimate | None]:
    """How far the blur reaches (odd, pixels at full resolution), from one estimate with a large bound;
    and that estimate when it ran at full resolution (it is then a candidate too)."""
    factor = max(1, int(round(min(region.shape) / PROBE_PIXELS)))
    small = region
    if factor > 1:
        small = F.interpolate(torch.from_numpy(np.asarray(region, np.float64))[None, None], scale_factor=1 / factor,
                              mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()
    bound = max(5, (max_size // factor) | 1)
    estimate = estimate_kernel(small, bound, PROBE)
    return kernel_extent(estimate.kernel) * factor, estimate if factor == 1 else None


def search_kernel(region: np.ndarray, size: int | None = None, max_size: int = MAX_SIZE) -> SearchResult:
    """The kernel of a gray region; `size` fixes the bound (odd), else it is probed up to `max_size`."""
    extent, candidates = None, []
    sizes = [size]
    if size is None:
        with using_threads(threads_now()):
            extent, probed = probe(region, max_size)
        sizes = sorted({int(np.clip(extent + margin, MIN_SIZE, max_size)) | 1 for margin in MARGINS})
        if probed is not None:
            candidates.append(("probe", probed))
    plans = [(f"{name} {bound}", bound, settings) for bound in sizes for name, settings in CANDIDATES.items()]
    candidates += parallel_map(lambda plan: (plan[0], estimate_kernel(region, plan[1], plan[2])), plans)
    scores = parallel_map(lambda candidate: reblur_residual(region, candidate[1].kernel), candidates)
    residuals = [(name, score) for (name, _), score in zip(candidates, scores)]
    best = int(np.argmin(scores))  # the first of equal residuals, as a serial search keeps it
    return SearchResult(candidates[best][1].kernel, candidates[best][1].size, residuals, extent)


def reblur_residual(region: np.ndarray, kernel: np.ndarray, settings: DeconvolutionSettings = SCORING) -> float:
    """Mean squared ||k * x - y|| inside the region, x its deconvolution with `kernel`."""
    y = np.asarray(region, np.float32)
    x = deconvolve(y[..., None], kernel, settings)[..., 0]
    reblurred = convolve(torch.from_numpy(x).double(), torch.from_numpy(np.asarray(kernel, np.float64))).numpy()
    b = min(BORDER, min(y.shape) // 4)
    return float(np.mean((reblurred - y)[b:-b, b:-b] ** 2))
