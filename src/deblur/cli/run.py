"""`deblur [run] PATHS...`: restore photos and folders."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from deblur.cli.console import Reporter, exit_on_errors
from deblur.deblurrer import SamplerOptions, ShakeRequest
from deblur.errors import UsageError

HELP = """Restore photos: files, folders (-r for sub-folders) and quoted globs like "*.JPG".

Each result is written beside its input as NAME_deblur.EXT, or under --output (mirroring the
folder tree); for one photo, --output sharp.jpg names the result itself. Nothing is ever
overwritten unless you pass --overwrite; inputs are never touched.

Exit codes: 0 all done, 1 some inputs failed, 2 usage, 3 model or weights unavailable,
4 device unavailable, 130 interrupted.
"""

FORMATS = "auto, jpeg, png, tiff, webp or bmp"


# The options of every command that restores photos (`run`, `adapt`), declared once.
Paths = Annotated[List[str], typer.Argument(help="Photos, folders or quoted globs.", show_default=False)]
Model = Annotated[Optional[str], typer.Option("--model", "-m", envvar="DEBLUR_MODEL",
                                              help="Model name from the manifest (default: xydeblur). shake: "
                                                   "estimate the camera-shake kernel and deconvolve, for a still "
                                                   "scene and a shaking hand. Photos its checks distrust (no "
                                                   "blur, blur that differs across the frame, ringing) get the "
                                                   "default network; moving subjects and video-like motion blur "
                                                   "can still pass them and come out worse: look at the result.")]
Weights = Annotated[Optional[str], typer.Option("--weights", "-w", envvar="DEBLUR_WEIGHTS",
                                                help="A .safetensors checkpoint to use instead of the model's: "
                                                     "a file or hf://ORG/REPO/FILE[@REVISION].")]
Offline = Annotated[bool, typer.Option("--offline", help="Never use the network (also DEBLUR_OFFLINE=1 or "
                                                         "HF_HUB_OFFLINE=1).")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Write results under this folder, or, "
                                                                       "for one photo, to this file (-o sharp.jpg).")]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Also restore photos in sub-folders.")]
Suffix = Annotated[str, typer.Option(help="Added to each result's name.")]
Format = Annotated[str, typer.Option("--format", "-f", help=f"Output format: {FORMATS}.")]
Quality = Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality (100: lossless WebP).")]
SkipExisting = Annotated[bool, typer.Option("--skip-existing", help="Skip photos whose result exists.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace results that exist.")]
Compare = Annotated[bool, typer.Option("--compare", help="Also write NAME_SUFFIX_compare.EXT: before | after.")]
StripMetadata = Annotated[bool, typer.Option("--strip-metadata", help="Do not copy EXIF and ICC to the result.")]
Device = Annotated[str, typer.Option(envvar="DEBLUR_DEVICE", help="auto, cpu, cuda, cuda:N or mps.")]
Precision = Annotated[str, typer.Option(envvar="DEBLUR_PRECISION", help="auto (the model's choice), fp32, fp16 or bf16.")]
Tile = Annotated[Optional[int], typer.Option(envvar="DEBLUR_TILE", min=16,
                                             help="Tile size in pixels (default: chosen from free memory).")]
Overlap = Annotated[Optional[int], typer.Option(min=0, help="Overlap between tiles in pixels "
                                                            "(default: the model's, 32).")]
Sampler = Annotated[Optional[str], typer.Option(help="direct (one pass) or diffusion (DvSR's refinement); "
                                                    "default: the model's.")]
Steps = Annotated[Optional[int], typer.Option(min=0, help="Diffusion steps (0: the predictor alone; default: the "
                                                          "model's, fewer on the CPU).")]
Samples = Annotated[int, typer.Option(min=1, help="Diffusion samples averaged per photo (more: higher PSNR, "
                                                  "smoother).")]
Seed = Annotated[int, typer.Option(help="Diffusion noise seed: the same seed, the same result.")]
ScheduleEnd = Annotated[Optional[float], typer.Option("--schedule-end", help="Diffusion: the last step's beta "
                                                      "(default: reach the training noise level).")]
KernelFile = Annotated[Optional[Path], typer.Option("--kernel", help="shake: deconvolve with this known PSF (PNG or "
                                                                    ".npy) instead of estimating one.")]
Region = Annotated[Optional[str], typer.Option("--region", help="shake: estimate the kernel in X,Y,W,H (pixels) "
                                                                "instead of a region chosen for its edges.")]
KernelSize = Annotated[Optional[int], typer.Option("--kernel-size", min=3, help="shake: the kernel's size bound "
                                                                                "in px, odd (default: probed).")]
Deconvolution = Annotated[Optional[str], typer.Option("--deconvolution", help="shake: the non-blind step: "
                                                      "learned (the shipped network), hyper-laplacian, or a "
                                                      "checkpoint of `deblur train --model deconvolution` "
                                                      "(default: the model's).")]
SaveKernel = Annotated[bool, typer.Option("--save-kernel", help="shake: also write NAME_SUFFIX_kernel.png, the "
                                                                "kernel used (--kernel reads it back).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print more detail.")]
Json = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]


def run(
    ctx: typer.Context, paths: Paths, model: Model = None, weights: Weights = None, offline: Offline = False,
    output: Output = None, recursive: Recursive = False, suffix: Suffix = "_deblur", fmt: Format = "auto",
    quality: Quality = 95, skip_existing: SkipExisting = False, overwrite: Overwrite = False,
    compare: Compare = False, strip_metadata: StripMetadata = False, device: Device = "auto",
    precision: Precision = "auto", tile: Tile = None, overlap: Overlap = None, sampler: Sampler = None,
    steps: Steps = None, samples: Samples = 1, seed: Seed = 0, schedule_end: ScheduleEnd = None,
    kernel: KernelFile = None, region: Region = None, kernel_size: KernelSize = None,
    deconvolution: Deconvolution = None, save_kernel: SaveKernel = False,
    quiet: Quiet = False, verbose: Verbose = False, as_json: Json = False,
) -> None:
    engine = EngineOptions(model, weights, offline, device, precision, tile, overlap,
                           SamplerOptions(sampler, steps, samples, seed, schedule_end),
                           ShakeRequest(kernel, region, kernel_size, deconvolution))
    restore_command(ctx, paths, engine,
                    output, recursive, suffix, fmt, quality, skip_existing, overwrite, compare, strip_metadata,
                    quiet, verbose, as_json, save_kernel=save_kernel)


def restore_command(ctx, paths, engine: "EngineOptions", output, recursive, suffix, fmt, quality, skip_existing,
                    overwrite, compare, strip_metadata, quiet, verbose, as_json, adapt=None,
                    save_kernel: bool = False) -> None:
    """What `run` and `adapt` share: plan the outputs, restore each photo, report, exit."""
    reporter = Reporter(quiet=quiet, verbose=verbose)
    with exit_on_errors(reporter):
        from deblur.batch import WriteOptions
        from deblur.inputs import OutputOptions, format_name

        if skip_existing and overwrite:
            raise UsageError("--skip-existing and --overwrite contradict each other; choose one")
        fmt = format_name(fmt)
        outputs = OutputOptions(output_dir=output, suffix=suffix, format=fmt, overwrite=overwrite,
                                skip_existing=skip_existing, compare=compare, kernel=save_kernel)
        writes = WriteOptions(format=fmt, quality=quality, overwrite=overwrite, keep_metadata=not strip_metadata)
        code = _run(ctx, reporter, paths, recursive, outputs, writes, engine, as_json, adapt)
    raise typer.Exit(code)


@dataclass(frozen=True)
class EngineOptions:
    """Which model runs where."""

    model: str | None
    weights: str | None  # a file or a hf:// reference
    offline: bool
    device: str
    precision: str
    tile: int | None
    overlap: int | None
    sampling: "SamplerOptions" = None
    shake: "ShakeRequest" = None


def _run(ctx, reporter: Reporter, paths, recursive, outputs, writes, engine: EngineOptions, as_json, adapt) -> int:
    from deblur.inputs import plan_jobs

    plan = plan_jobs(paths, recursive, outputs)
    for path, reason in plan.ignored:
        reporter.detail(f"ignoring '{path}': {reason}")
    for path, reason in plan.skipped:
        reporter.warning(f"skipping '{path}': {reason}")
    for path, reason in plan.failed:
        reporter.error(f"{path}: {reason}{_did_you_mean(ctx, path)}")
    if not plan.jobs and not plan.skipped and not plan.failed:
        raise UsageError("no photos found in the given paths")

    summary = {"processed": [], "skipped": [{"path": str(p), "reason": r} for p, r in plan.skipped],
               "failed": [{"path": str(p), "error": r} for p, r in plan.failed]}
    if plan.jobs:
        summary.update(_restore_jobs(reporter, plan.jobs, engine, writes, outputs.output_dir, summary, adapt))
    if as_json:
        reporter.data(summary)
    done, failed = len(summary["processed"]), len(summary["failed"])
    if len(plan.jobs) + len(plan.skipped) + len(plan.failed) > 1 or failed:
        reporter.info(f"{done} restored, {len(plan.skipped)} skipped, {failed} failed")
    return 1 if failed else 0


def _restore_jobs(reporter: Reporter, jobs, engine: EngineOptions, writes, output_dir, summary, adapt) -> dict:
    # torch is imported here, not at start-up: `deblur --help` stays instant.
    from deblur.batch import run_batch
    from deblur.deblurrer import Deblurrer

    steps_task = {}  # filled once the progress display exists

    def on_step(done, total):
        if steps_task.get("progress"):
            steps_task["progress"].update(steps_task["id"], completed=done, total=total)

    sampling, shake = engine.sampling or SamplerOptions(), engine.shake or ShakeRequest()
    with reporter.downloads() as progress:
        deblurrer = Deblurrer(engine.model, weights=engine.weights, device=engine.device,
                              precision=engine.precision, tile=engine.tile, overlap=engine.overlap,
                              sampler=sampling.name, steps=sampling.steps, samples=sampling.samples,
                              seed=sampling.seed, schedule_end=sampling.schedule_end, kernel=shake.kernel,
                              region=shake.region, kernel_size=shake.kernel_size,
                              deconvolution=shake.deconvolution, offline=engine.offline,
                              progress=progress, on_step=on_step)
    for note in deblurrer.notes:
        reporter.info(note)
    for warning in deblurrer.warnings:
        reporter.warning(warning)
    loaded, choice, restorer, sampling = deblurrer.model, deblurrer.choice, deblurrer.restorer, deblurrer.sampling
    adapter = deblurrer.adapter(adapt) if adapt is not None else None
    if loaded.spec.needs_weights:
        reporter.info(f"deblur: {loaded.name} on {choice.reason}; tiles of {restorer.initial_tile_size()} px"
                      f"{'' if output_dir is None else f'; writing to {output_dir}'}")
    else:
        reporter.info(f"deblur: {loaded.name} (kernel estimation and deconvolution) on {choice.device}; "
                      f"photos it cannot trust get {deblurrer.fallback_name}"
                      f"{'' if output_dir is None else f'; writing to {output_dir}'}")
    estimate = _DiffusionEstimate(reporter, jobs, sampling) if sampling.get("steps") else None
    reporter.detail(f"weights: {loaded.source} ({loaded.verification})")

    def report(result):
        if result.ok:
            adaptation = result.details.get("adaptation")
            if adaptation and not adaptation["kept"]:  # in the JSON summary as on screen
                result.warnings.append("adaptation raised the self-reblur loss, so the photo was restored with "
                                       "the original weights (lower --lr, or --keep-worse)")
            summary["processed"].append(result.as_json())
            rate = result.megapixels / result.seconds if result.seconds else 0.0
            reporter.info(f"{result.source} -> {result.output} ({result.seconds:.1f} s, {rate:.2f} MP/s)")
            if adaptation:
                reporter.info(f"  self-reblur loss {adaptation['self_reblur_before']:.5f} -> "
                              f"{adaptation['self_reblur_after']:.5f} after {adaptation['iters']} iterations "
                              f"({adaptation['seconds']:.1f} s)")
            for warning in result.warnings:
                reporter.warning(f"{result.source}: {warning}")
            reporter.detail(f"  tile {result.tile} px, {result.megapixels:.2f} MP")
        else:
            summary["failed"].append(result.as_json())
            named = str(result.source) in result.error  # read errors already name the file
            reporter.error(result.error if named else f"{result.source}: {result.error}")

    with reporter.progress() as progress:
        files_task = progress.add_task("files", total=len(jobs)) if progress else None
        tiles_task = progress.add_task("tiles", total=None) if progress else None
        adapt_task = progress.add_task("adapting", total=adapt.iters) if progress and adapter else None
        if progress and sampling.get("steps"):
            steps_task.update(progress=progress, id=progress.add_task("diffusion steps", total=sampling["steps"]))

        def on_start(job):
            if estimate:
                estimate.on_start(job)
            if progress:
                progress.update(tiles_task, completed=0, total=None, description=f"{job.source.name}")
                if adapter:
                    progress.update(adapt_task, completed=0, description="adapting")

        def on_iter(step, total, loss):
            if progress:
                progress.update(adapt_task, completed=step, total=total,
                                description=f"adapting (self-reblur loss {loss:.5f})")

        def on_tile(done, total):
            if estimate:
                estimate.on_tile(done, total)
            if progress:
                progress.update(tiles_task, completed=done, total=total)

        def on_done(result):
            report(result)
            if progress:
                progress.advance(files_task)

        try:
            around = (lambda pixels: adapter.adapted(pixels, on_iter)) if adapter else None
            run_batch(jobs, restorer, writes, on_start, on_tile, on_done, around)
        except KeyboardInterrupt:
            if progress:
                progress.stop()
            reporter.error(f"interrupted: {len(summary['processed'])} of {len(jobs)} photos restored; "
                           "the photo in progress was discarded, no partial file was left")
            raise typer.Exit(130) from None
    return {"device": str(choice.device), "precision": choice.precision, "overlap": getattr(restorer, "overlap", None),
            "sampler": sampling,
            "model": {"name": loaded.name, "arch": loaded.spec.name, "config": loaded.config,
                      "weights": loaded.source, "verification": loaded.verification}}


class _DiffusionEstimate:
    """Times the first tile restored and scales it to all the photos' pixels: a long diffusion run is
    announced once its real cost per tile is known (a small probe tile overstated it about 20x)."""

    def __init__(self, reporter: Reporter, jobs, sampling: dict):
        from deblur.imageio import declared_size

        self.reporter, self.sampling = reporter, sampling
        self.sizes = {job.source: declared_size(job.source) or (0, 0) for job in jobs}
        self.pixels = sum(width * height for width, height in self.sizes.values())
        self.started, self.current, self.done = None, 0, False

    def on_start(self, job) -> None:
        import time

        width, height = self.sizes.get(job.source, (0, 0))
        self.started, self.current = time.perf_counter(), width * height

    def on_tile(self, done: int, total: int) -> None:
        import time

        if self.done or self.started is None or done != 1 or not self.current:
            return
        self.done = True
        seconds = (time.perf_counter() - self.started) * total * self.pixels / self.current
        duration = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
        self.reporter.info(f"diffusion: {self.sampling['steps']} steps x {self.sampling['samples']} sample(s); "
                           f"about {duration} for {self.pixels / 1e6:.1f} MP (timed on the first tile)")


def _did_you_mean(ctx: typer.Context, path: Path) -> str:
    """`deblur adaptt x.png` reads `adaptt` as a file; point at the command meant."""
    if path.exists() or len(path.parts) != 1:
        return ""
    group = ctx.parent.command if ctx.parent else None
    names = [n for n in group.list_commands(ctx.parent) if n != "run"] if group else []
    match = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f" (did you mean `deblur {match[0]}`?)" if match else ""
