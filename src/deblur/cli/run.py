"""`deblur [run] PATHS...`: restore photos and folders."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from deblur.cli.console import Reporter, exit_on_errors
from deblur.errors import UsageError

HELP = """Restore photos: files, folders (-r for sub-folders) and quoted globs like "*.JPG".

Each result is written beside its input as NAME_deblur.EXT, or under --output (mirroring the
folder tree). Nothing is ever overwritten unless you pass --overwrite; inputs are never touched.

Exit codes: 0 all done, 1 some inputs failed, 2 usage, 3 model or weights unavailable,
4 device unavailable, 130 interrupted.
"""

FORMATS = "auto, jpeg, png, tiff, webp or bmp"


def run(
    ctx: typer.Context,
    paths: Annotated[List[str], typer.Argument(help="Photos, folders or quoted globs.", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", envvar="DEBLUR_MODEL",
                                                 help="Model name from the manifest (default: xydeblur).")] = None,
    weights: Annotated[Optional[str], typer.Option("--weights", "-w", envvar="DEBLUR_WEIGHTS",
                                                   help="A .safetensors checkpoint to use instead of the model's: "
                                                        "a file or hf://ORG/REPO/FILE[@REVISION].")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never use the network (also DEBLUR_OFFLINE=1 or "
                                                            "HF_HUB_OFFLINE=1).")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write results under this folder.")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also restore photos in sub-folders.")] = False,
    suffix: Annotated[str, typer.Option(help="Added to each result's name.")] = "_deblur",
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"Output format: {FORMATS}.")] = "auto",
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality (100: lossless WebP).")] = 95,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip photos whose result exists.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace results that exist.")] = False,
    compare: Annotated[bool, typer.Option("--compare", help="Also write NAME_deblur_compare.EXT: before | after.")] = False,
    strip_metadata: Annotated[bool, typer.Option("--strip-metadata", help="Do not copy EXIF and ICC to the result.")] = False,
    device: Annotated[str, typer.Option(envvar="DEBLUR_DEVICE", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(envvar="DEBLUR_PRECISION",
                                           help="auto (the model's choice), fp32, fp16 or bf16.")] = "auto",
    tile: Annotated[Optional[int], typer.Option(envvar="DEBLUR_TILE", min=16,
                                                help="Tile size in pixels (default: chosen from free memory).")] = None,
    overlap: Annotated[Optional[int], typer.Option(min=0, help="Overlap between tiles in pixels "
                                                               "(default: the model's, 32).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print more detail.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    reporter = Reporter(quiet=quiet, verbose=verbose)
    with exit_on_errors(reporter):
        from deblur.batch import WriteOptions
        from deblur.inputs import OutputOptions, format_name

        if skip_existing and overwrite:
            raise UsageError("--skip-existing and --overwrite contradict each other; choose one")
        fmt = format_name(fmt)
        outputs = OutputOptions(output_dir=output, suffix=suffix, format=fmt, overwrite=overwrite,
                                skip_existing=skip_existing, compare=compare)
        writes = WriteOptions(format=fmt, quality=quality, overwrite=overwrite, keep_metadata=not strip_metadata)
        engine = EngineOptions(model, weights, offline, device, precision, tile, overlap)
        code = _run(ctx, reporter, paths, recursive, outputs, writes, engine, as_json)
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


def _run(ctx, reporter: Reporter, paths, recursive, outputs, writes, engine: EngineOptions, as_json) -> int:
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
        summary.update(_restore_jobs(reporter, plan.jobs, engine, writes, outputs.output_dir, summary))
    if as_json:
        reporter.data(summary)
    done, failed = len(summary["processed"]), len(summary["failed"])
    if len(plan.jobs) + len(plan.skipped) + len(plan.failed) > 1 or failed:
        reporter.info(f"{done} restored, {len(plan.skipped)} skipped, {failed} failed")
    return 1 if failed else 0


def _restore_jobs(reporter: Reporter, jobs, engine: EngineOptions, writes, output_dir, summary) -> dict:
    # torch is imported here, not at start-up: `deblur --help` stays instant.
    from deblur import devices
    from deblur.batch import run_batch
    from deblur.restore import DEFAULT_OVERLAP, Restorer
    from deblur.samplers import direct
    from deblur.store import UNVERIFIED
    from deblur.weights import load_model

    devices.resolve_device(engine.device)  # a missing device fails before the model is loaded
    with reporter.downloads() as progress:
        loaded = load_model(engine.model, engine.weights, offline=engine.offline, progress=progress)
    if loaded.verification == UNVERIFIED:
        reporter.warning(f"{engine.weights} is unverified: the manifest does not list it and the hub gave no "
                         "sha256 for it")
    choice = devices.choose(engine.device, loaded.precision_for(engine.precision), loaded.spec.supports_fp16,
                            loaded.spec.supports_bf16)
    overlap = loaded.overlap_for(engine.overlap, DEFAULT_OVERLAP)
    devices.prepare_network(loaded.network, choice.device)
    restorer = Restorer(direct(loaded.network), choice, loaded.spec.size_multiple, loaded.bytes_per_pixel,
                        tile=engine.tile, overlap=overlap)
    reporter.info(f"deblur: {loaded.name} on {choice.reason}; tiles of {restorer.initial_tile_size()} px"
                  f"{'' if output_dir is None else f'; writing to {output_dir}'}")
    reporter.detail(f"weights: {loaded.source} ({loaded.verification})")

    def report(result):
        if result.ok:
            summary["processed"].append(result.as_json())
            rate = result.megapixels / result.seconds if result.seconds else 0.0
            reporter.info(f"{result.source} -> {result.output} ({result.seconds:.1f} s, {rate:.2f} MP/s)")
            for warning in result.warnings:
                reporter.warning(f"{result.source}: {warning}")
            reporter.detail(f"  tile {result.tile} px, {result.megapixels:.2f} MP")
        else:
            summary["failed"].append(result.as_json())
            reporter.error(result.error)

    with reporter.progress() as progress:
        files_task = progress.add_task("files", total=len(jobs)) if progress else None
        tiles_task = progress.add_task("tiles", total=None) if progress else None

        def on_start(job):
            if progress:
                progress.update(tiles_task, completed=0, total=None, description=f"{job.source.name}")

        def on_tile(done, total):
            if progress:
                progress.update(tiles_task, completed=done, total=total)

        def on_done(result):
            report(result)
            if progress:
                progress.advance(files_task)

        try:
            run_batch(jobs, restorer, writes, on_start, on_tile, on_done)
        except KeyboardInterrupt:
            if progress:
                progress.stop()
            reporter.error(f"interrupted: {len(summary['processed'])} of {len(jobs)} photos restored; "
                           "the photo in progress was discarded, no partial file was left")
            raise typer.Exit(130) from None
    return {"device": str(choice.device), "precision": choice.precision, "overlap": restorer.overlap,
            "model": {"name": loaded.name, "arch": loaded.spec.name, "config": loaded.config,
                      "weights": loaded.source, "verification": loaded.verification}}


def _did_you_mean(ctx: typer.Context, path: Path) -> str:
    """`deblur adaptt x.png` reads `adaptt` as a file; point at the command meant."""
    if path.exists() or len(path.parts) != 1:
        return ""
    group = ctx.parent.command if ctx.parent else None
    names = [n for n in group.list_commands(ctx.parent) if n != "run"] if group else []
    match = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f" (did you mean `deblur {match[0]}`?)" if match else ""
