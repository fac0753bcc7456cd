"""From options to pixels: one model loaded once, on one device, restoring, adapting and scoring many photos.

`Deblurrer` is the one path the CLI and Python callers share: it resolves the model (the default, the
shake model when shake options are given, the default diffusion model for `sampler="diffusion"`),
validates the options with the CLI's messages, picks the device and precision, and builds the tiled
restorer. `deblur.restore(image)` is the one-call form and `deblur.score(image)` the blur score;
images may be paths, PIL images, numpy arrays or torch tensors (see image_kinds.py) and come back
as the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from deblur.errors import ModelError, UsageError


@dataclass(frozen=True)
class SamplerOptions:
    name: str | None = None  # None: the model's default sampler
    steps: int | None = None
    samples: int = 1
    seed: int = 0
    schedule_end: float | None = None


@dataclass(frozen=True)
class ShakeRequest:
    """The shake model's options, as given."""

    kernel: Path | None = None  # a PSF file, or an array
    region: str | None = None  # "X,Y,W,H"
    kernel_size: int | None = None
    deconvolution: str | None = None  # hyper-laplacian, learned, or a learned deconvolution's checkpoint

    def given(self) -> list[str]:
        return [flag for flag, value in (("--kernel", self.kernel), ("--region", self.region),
                                         ("--kernel-size", self.kernel_size),
                                         ("--deconvolution", self.deconvolution)) if value is not None]


class Deblurrer:
    """A model ready to restore photos: `Deblurrer("xydeblur").restore("shaky.jpg")`.

    Options are those of `deblur PHOTO`: model (a manifest name; default the manifest's default), weights
    (a .safetensors file or hf:// reference), device, precision, tile, overlap, sampler, steps, samples,
    seed, schedule_end (diffusion), kernel, region, kernel_size, deconvolution (the shake model), offline.
    `notes` lists what was decided for the caller (e.g. which model a sampler chose), `warnings` what
    the caller should be wary of (unverified weights).
    """

    def __init__(self, model: str | None = None, *, weights: str | None = None, device: str = "auto",
                 precision: str = "auto", tile: int | None = None, overlap: int | None = None,
                 sampler: str | None = None, steps: int | None = None, samples: int = 1, seed: int = 0,
                 schedule_end: float | None = None, kernel=None, region: str | None = None,
                 kernel_size: int | None = None, deconvolution: str | None = None, offline: bool = False,
                 progress=None,
                 on_step: Callable[[int, int], None] | None = None):
        from deblur import devices
        from deblur.store import UNVERIFIED
        from deblur.weights import load_model

        _check_ranges(tile=tile, overlap=overlap, steps=steps, samples=samples, kernel_size=kernel_size)
        self.sampling_options = SamplerOptions(sampler, steps, samples, seed, schedule_end)
        self.shake_request = ShakeRequest(kernel, region, kernel_size, deconvolution)
        self.notes: list[str] = []
        self.warnings: list[str] = []
        devices.resolve_device(device)  # a missing device fails before the model is loaded
        model = self._resolve_model_name(model, weights)
        self.model = load_model(model, weights, offline=offline, progress=progress)
        shake_flags = self.shake_request.given()
        if shake_flags and self.model.spec.needs_weights:
            raise UsageError(f"{' and '.join(shake_flags)} need --model shake, not {self.model.name}")
        if self.model.verification == UNVERIFIED:
            self.warnings.append(f"{weights} is unverified: the manifest does not list it and the hub gave no "
                                 "sha256 for it")
        self._device, self._precision, self._tile, self._overlap = device, precision, tile, overlap
        self._weights, self._progress = weights, progress
        self.fallback_name = None
        if self.model.spec.needs_weights:
            self.choice, self.restorer, self.sampling = self._network_restorer(self.model, self.sampling_options,
                                                                               on_step)
        else:
            self.choice, self.restorer, self.fallback_name = self._shake_restorer(offline, on_step)
            self.sampling = {"name": "shake", "fallback": self.fallback_name}

    # --- choosing and building -------------------------------------------------------------------------

    def _resolve_model_name(self, model: str | None, weights) -> str | None:
        shake_flags = self.shake_request.given()
        if shake_flags and model is None:
            self.notes.append(f"{' and '.join(shake_flags)}: using the shake model (kernel deconvolution)")
            return "shake"
        if self.sampling_options.name == "diffusion" and model is None and weights is None:
            name = default_diffusion_model()
            self.notes.append(f"--sampler diffusion: using {name}, the default diffusion model")
            return name
        return model

    def _network_restorer(self, loaded, sampling: SamplerOptions, on_step):
        from deblur import devices
        from deblur.restorer import DEFAULT_OVERLAP, Restorer

        choice = devices.choose_for(loaded.spec, self._device, loaded.precision_for(self._precision))
        overlap = loaded.overlap_for(self._overlap, DEFAULT_OVERLAP)
        devices.prepare_network(loaded.network, choice.device)
        predict, record = _sampler(loaded, choice, sampling, on_step)
        restorer = Restorer(predict, choice, loaded.spec.size_multiple, loaded.bytes_per_pixel,
                            tile=self._tile, overlap=overlap)
        return choice, restorer, record

    def _shake_restorer(self, offline: bool, on_step):
        """The shake model's ShakeRestorer, with the manifest's default network as its fallback."""
        from deblur.manifest import load_manifest
        from deblur.shake.kernel_file import load_kernel
        from deblur.shake.region import parse_region
        from deblur.shake.restorer import ShakeRestorer
        from deblur.weights import load_model

        request, sampling = self.shake_request, self.sampling_options
        if sampling.name or sampling.steps is not None:
            raise UsageError("--sampler and --steps are for the networks; the shake model deconvolves")
        if self._weights is not None:
            raise UsageError("--weights is for the networks; the shake model has none")
        if request.kernel_size is not None and request.kernel_size % 2 == 0:
            raise UsageError(f"--kernel-size {request.kernel_size}: the size must be odd (the kernel has a centre "
                             "pixel)")
        kernel = request.kernel
        if isinstance(kernel, (str, Path)):
            kernel = load_kernel(Path(kernel))
        options = replace(self.model.network, kernel=kernel,
                          region=None if request.region is None else parse_region(request.region),
                          kernel_size=request.kernel_size,
                          deconvolver=self._deconvolver(request.deconvolution, offline))
        default = load_manifest().default_model
        fallback_model = load_model(default, offline=offline)
        choice, fallback, _ = self._network_restorer(fallback_model, SamplerOptions(), on_step)
        return choice, ShakeRestorer(options, choice.device, fallback, default), default

    def _deconvolver(self, name: str | None, offline: bool):
        """The shake model's non-blind step: named, a checkpoint file, or the manifest's choice (inference.deconvolution)."""
        from deblur.manifest import load_manifest
        from deblur.shake import deconvolvers
        from deblur.store import ModelStore

        entry = load_manifest().entry(self.model.name)
        name = name or entry.inference.get("deconvolution", deconvolvers.HYPER_LAPLACIAN)
        if name == deconvolvers.HYPER_LAPLACIAN:
            return deconvolvers.HyperLaplacian()
        if name == deconvolvers.LEARNED:
            if "deconvolution" not in entry.files:
                raise UsageError(f"--deconvolution learned: the {entry.name} model ships no learned deconvolution")
            return deconvolvers.load_learned(ModelStore().fetch(entry, offline, self._progress)["deconvolution"].path)
        if not Path(name).expanduser().is_file():
            raise UsageError(f"--deconvolution {name}: use {deconvolvers.HYPER_LAPLACIAN}, {deconvolvers.LEARNED}, "
                             "or a checkpoint of `deblur train --model deconvolution`")
        return deconvolvers.load_learned(Path(name).expanduser())

    def adapter(self, options):
        """Test-time adaptation (AdaptOptions) for this network; it needs the reblurring module."""
        from deblur.training.adapt import SelfReblurAdapter

        if not self.model.spec.needs_weights:
            raise UsageError(f"{self.model.name} is not a network: adapt needs one with a reblurring module"
                             + reblur_models_hint())
        if self.model.reblur is None:
            raise ModelError(f"'{self.model.source}' has no reblurring module, which adapt needs"
                             + reblur_models_hint())
        return SelfReblurAdapter(self.model.network, self.model.reblur, self.choice.device,
                                 self.model.spec.size_multiple, options)

    # --- using it -------------------------------------------------------------------------------------

    def restore_pixels(self, pixels, on_tile=None):
        """H x W x C float32 pixels in [0, 1] -> (restored pixels, RestoreReport)."""
        return self.restorer.restore(pixels, on_tile)

    def restore(self, image: Any, output: str | Path | None = None, overwrite: bool = False):
        """Restore a path, PIL image, numpy array or torch tensor; returns the same kind (a path: a PIL
        image with its EXIF and ICC, or, with `output`, the path written)."""
        from deblur.image_kinds import convert

        return convert(image).apply(lambda pixels: self.restore_pixels(pixels)[0], output, overwrite)

    def adapt(self, image: Any, iters: int = 20, lr: float = 5e-6, crops: int = 4, crop_size: int = 256,
              fidelity: float = 0.0, seed: int = 0, keep_worse: bool = False, output: str | Path | None = None,
              overwrite: bool = False):
        """`deblur adapt`: tune the network to this photo (self-reblur), restore it, put the weights back."""
        from deblur.image_kinds import convert
        from deblur.training.adapt import AdaptOptions

        adapter = self.adapter(AdaptOptions(iters=iters, lr=lr, crops=crops, crop_size=crop_size,
                                            fidelity=fidelity, seed=seed, keep_worse=keep_worse))

        def adapted(pixels):
            with adapter.adapted(pixels):
                return self.restore_pixels(pixels)[0]

        return convert(image).apply(adapted, output, overwrite)

    def score(self, image: Any) -> float:
        """`deblur score`: the width of the photo's strongest edges in px (about 2.5 sharp; more blur,
        higher); needs no model. A batch of images gets the mean of their scores."""
        return score(image)


def score(image: Any) -> float:
    """The blur score of any image kind (deblur.scoring): lower is sharper; no model needed."""
    from statistics import mean

    from deblur.image_kinds import convert
    from deblur.scoring import blur_score

    return mean(blur_score(pixels) for pixels in convert(image).images())


def restore(image: Any, model: str | None = None, output: str | Path | None = None, overwrite: bool = False,
            **options):
    """Restore one image in one call: `deblur.restore("shaky.jpg")`; options as for Deblurrer."""
    return Deblurrer(model, **options).restore(image, output=output, overwrite=overwrite)


def _check_ranges(**values) -> None:
    """What the CLI's option bounds enforce, for callers that do not come through the CLI."""
    lowest = {"tile": 16, "overlap": 0, "steps": 0, "samples": 1, "kernel_size": 3}
    for name, value in values.items():
        if value is not None and value < lowest[name]:
            raise UsageError(f"--{name.replace('_', '-')} must be at least {lowest[name]}, got {value}")


def _sampler(loaded, choice, options: SamplerOptions, on_step):
    """The sampler callable and a record of its settings; diffusion defaults come from the manifest."""
    from deblur.samplers import SAMPLERS, diffusion, direct

    name = options.name or loaded.spec.default_sampler
    if name not in SAMPLERS:
        raise UsageError(f"unknown sampler '{name}'; use {' or '.join(SAMPLERS)}")
    if name == "direct":
        if options.steps:
            raise UsageError("--steps needs --sampler diffusion (and a diffusion model such as dvsr)")
        if options.samples != 1:
            raise UsageError("--samples needs --sampler diffusion: one pass of a network gives one result")
        return direct(loaded.network), {"name": "direct"}
    if loaded.spec.objective != "diffusion":
        raise UsageError(f"{loaded.spec.name} is not a diffusion model; --sampler diffusion needs dvsr")
    on_cpu = choice.device.type == "cpu"
    steps = options.steps
    if steps is None:
        steps = loaded.inference.get("steps_cpu" if on_cpu else "steps_gpu", 10 if on_cpu else 100)
    record = {"name": "diffusion", "steps": steps, "samples": options.samples, "seed": options.seed,
              "schedule_end": options.schedule_end}
    return diffusion(loaded.network, steps, options.samples, options.seed, options.schedule_end,
                     on_step=on_step), record


def default_diffusion_model() -> str:
    """The manifest's first diffusion model (dvsr), for `--sampler diffusion` without --model."""
    from deblur.archs.registry import get_arch
    from deblur.manifest import load_manifest

    for name, entry in load_manifest().models.items():
        if get_arch(entry.arch).objective == "diffusion":
            return name
    raise UsageError("--sampler diffusion needs a diffusion model, and the manifest lists none")


def reblur_models_hint() -> str:
    """Where checkpoints with a reblurring module come from (for adapt's errors)."""
    from deblur.manifest import load_manifest

    with_module = [name for name, entry in load_manifest().models.items() if entry.inference.get("reblur_module")]
    return (": use a checkpoint from `deblur train` with the reblurring loss on (the default)"
            + (f", or one of the models {', '.join(with_module)}" if with_module else ""))
