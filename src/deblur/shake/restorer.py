"""`--model shake`: region -> blind kernel -> deconvolution of the whole photo -> guards -> maybe fall back.

ShakeRestorer has the Restorer's interface (`restore(pixels) -> (pixels, RestoreReport)`), so the
batch loop, I/O and reports are the networks'. When a guard does not trust the kernel or the
result, the photo is restored by the fallback (the default network) and the report says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from deblur.errors import InputError
from deblur.restorer import RestoreReport
from deblur.shake.deconvolve import DeconvolutionSettings
from deblur.shake.deconvolvers import HyperLaplacian
from deblur.shake.guards import GuardThresholds, kernel_problems, kernel_similarity, ringing
from deblur.shake.region import DEFAULT_SIZE, Region, choose_region
from deblur.shake.kernel import estimate_kernel
from deblur.shake.search import MAX_SIZE, PROBE, kernel_extent, search_kernel
from deblur.threads import threads_now, using_threads


@dataclass(frozen=True)
class ShakeOptions:
    region: Region | None = None  # where to estimate; None: chosen automatically
    region_size: int = DEFAULT_SIZE
    kernel_size: int | None = None  # the kernel's bound (odd px); None: probed
    max_kernel_size: int = MAX_SIZE
    kernel: np.ndarray | None = field(default=None, compare=False)  # a known PSF: no estimation, no guards
    deconvolution: DeconvolutionSettings = DeconvolutionSettings()  # the hyper-Laplacian's, when it is the one
    deconvolver: object = field(default=None, compare=False)  # shake/deconvolvers.py; None: the hyper-Laplacian
    guards: GuardThresholds = GuardThresholds()


class ShakeRestorer:
    """Blind (or, with options.kernel, non-blind) deconvolution of whole photos on one device."""

    def __init__(self, options: ShakeOptions = ShakeOptions(), device="cpu", fallback=None, fallback_name: str = ""):
        self.options = options
        self.device = device
        self.fallback = fallback  # a Restorer, or None: a distrusted result is kept, with a warning
        self.fallback_name = fallback_name

    def restore(self, pixels: np.ndarray, on_tile=None) -> tuple[np.ndarray, RestoreReport]:
        options = self.options
        gray = pixels.mean(axis=2)
        details: dict = {}
        started = time.perf_counter()
        if options.kernel is not None:
            kernel, problems = np.asarray(options.kernel, np.float64), []
            details["kernel"] = {"source": "given", "size": int(kernel.shape[0])}
        else:
            region = options.region or choose_region(pixels, options.region_size)
            if region.x + region.width > pixels.shape[1] or region.y + region.height > pixels.shape[0]:
                raise InputError(f"--region {region.as_text()} reaches beyond this {pixels.shape[1]} x "
                                 f"{pixels.shape[0]} photo")
            found = search_kernel(region.crop(gray), options.kernel_size, options.max_kernel_size)
            kernel = found.kernel
            details["kernel"] = {"source": "estimated", "region": region.as_text(), "bound": found.size,
                                 "extent": kernel_extent(kernel),
                                 "seconds": round(time.perf_counter() - started, 2)}
            problems = kernel_problems(kernel, options.guards)
            check = _check_region(pixels, region, options.region_size)
            if not problems and check is not None:
                # uniform camera shake blurs every part of the photo alike; a moving subject does not
                with using_threads(threads_now()):
                    other = estimate_kernel(check.crop(gray), found.size, PROBE).kernel
                agreement = kernel_similarity(kernel, other)
                details["kernel"]["agreement"] = round(agreement, 3)
                if agreement < options.guards.min_agreement:
                    problems.append(f"the blur differs across the photo (kernels from two regions agree "
                                    f"{agreement:.0%}); is the subject moving?")
        result = None
        if not problems:
            deconvolver = options.deconvolver or HyperLaplacian(options.deconvolution)
            details["deconvolution"] = deconvolver.name
            with using_threads(threads_now()):
                result = np.clip(deconvolver(pixels, kernel, self.device, on_channel=on_tile), 0, 1).astype(np.float32)
            score = ringing(pixels, result)
            details["ringing"] = round(score, 3)
            if options.kernel is None and score > options.guards.max_ringing:
                problems.append(f"deconvolution rang ({score:.1f}x the input's gradients in flat areas)")
        warnings = []
        if problems:
            details["fallback"] = problems
            if self.fallback is not None:
                result, fallback_report = self.fallback.restore(pixels, on_tile)
                warnings += fallback_report.warnings
                warnings.append(f"shake: {'; '.join(problems)}; restored with {self.fallback_name} instead")
            else:
                warnings.append(f"shake: {'; '.join(problems)}")
                if result is None:
                    result = pixels.copy()
        elif options.kernel is not None and details.get("ringing", 0) > options.guards.max_ringing:
            warnings.append(f"the given kernel rang ({details['ringing']:.1f}x the input's gradients in flat "
                            "areas): is it the photo's blur, and is it centred?")
        return result, RestoreReport(tile=None, tiles=1, warnings=warnings, details={"shake": details}, kernel=kernel)


def _check_region(pixels: np.ndarray, used: Region, size: int) -> Region | None:
    """A second window to estimate the kernel again: the best one outside the estimation region, if
    the photo has room for one (None otherwise)."""
    height, width = pixels.shape[:2]
    if height < 2 * size and width < 2 * size:
        return None
    masked = pixels.copy()
    masked[used.y:used.y + used.height, used.x:used.x + used.width] = 0.5  # flat: never chosen again
    return choose_region(masked, size)
