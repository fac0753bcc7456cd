"""`deblur models list|info|download|import|verify|path|rm`: the checkpoints on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from deblur.cli.console import Reporter, exit_on_errors, human_size
from deblur.errors import InputError, ModelError, UsageError

app = typer.Typer(
    no_args_is_help=True,
    help="List, fetch, verify, carry and remove model checkpoints.\n\n"
    "Checkpoints load from the package, else the cache (DEBLUR_CACHE_DIR, default the user cache folder), "
    "else download once from the hub. For a machine without network: `deblur models download --all --to DIR` "
    "on a connected one, then `deblur models import DIR` on it.",
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
NameArgument = Annotated[str, typer.Argument(help="Model name.", show_default=False)]
NamesArgument = Annotated[Optional[List[str]], typer.Argument(help="Model names (default: all).", show_default=False)]


def _catalogue():
    from deblur.manifest import load_manifest
    from deblur.store import ModelStore

    return load_manifest(), ModelStore()


def _entries(manifest, names, all_by_default=True):
    if names:
        return [manifest.entry(name) for name in names]
    if all_by_default:
        return list(manifest.models.values())
    return [manifest.entry(manifest.default_model)]


def _loads_from(entry, statuses) -> str:
    """One word or phrase for where the model's weights would come from right now."""
    from deblur.archs.registry import ARCHS

    origins = {status.origin for status in statuses}
    if entry.arch in ARCHS and not ARCHS[entry.arch].needs_weights:
        return "built in (no weights)"
    if not statuses:
        return "no checkpoint yet"
    if "missing" in origins:
        return "missing (import it)"
    if "hub" in origins:
        return f"hub (download {human_size(entry.size)})"
    return "cache" if "cache" in origins else "bundled"


@app.command("list")
def list_models(as_json: JsonOption = False) -> None:
    """Every model in the manifest: arch, size, licence, where it would load from, cached or not."""
    reporter = Reporter()
    with exit_on_errors(reporter):
        manifest, store = _catalogue()
        rows = []
        for entry in manifest.models.values():
            statuses = store.locate(entry)
            rows.append({
                "name": entry.name, "default": entry.name == manifest.default_model, "arch": entry.arch,
                "config": entry.config, "size": entry.size, "licence": entry.licence,
                "loads_from": _loads_from(entry, statuses),
                "cached": bool(statuses) and all(store.cached_path(entry, spec) for spec in entry.files.values()),
            })
        if as_json:
            Reporter.data({"cache": str(store.root), "models": rows})
            return
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("model", "arch", "size", "licence", "loads from", "cached"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["name"] + (" (default)" if row["default"] else ""),
                          " ".join([row["arch"], *(f"{k}={v}" for k, v in row["config"].items())]),
                          human_size(row["size"]) if row["size"] else "-", row["licence"] or "-",
                          row["loads_from"], "yes" if row["cached"] else "no")
        reporter.out.print(table)
        reporter.out.print(f"cache: {store.root}", highlight=False)


@app.command("info")
def info(name: NameArgument, as_json: JsonOption = False) -> None:
    """Everything the manifest says about one model, and where its files are."""
    reporter = Reporter()
    with exit_on_errors(reporter):
        manifest, store = _catalogue()
        entry = manifest.entry(name)
        data = entry.as_json()
        data["default"] = entry.name == manifest.default_model
        data["location"] = [status.as_json() for status in store.locate(entry)]
        data["loads_from"] = _loads_from(entry, store.locate(entry))
        if as_json:
            Reporter.data(data)
            return
        lines = [f"{entry.name}{' (default)' if data['default'] else ''}: {entry.description or entry.arch}",
                 f"arch: {entry.arch} {json.dumps(entry.config)}",
                 f"licence: {entry.licence or 'not stated'}",
                 f"loads from: {data['loads_from']}"]
        for role, spec in entry.files.items():
            where = next(s.path for s in store.locate(entry) if s.role == role)
            lines.append(f"file {role}: {spec.filename}, {human_size(spec.size)}, sha256 {spec.sha256}"
                         + (f", at {where}" if where else ""))
        if entry.hub:
            lines.append(f"hub: {entry.hub.repo_id} at commit {entry.hub.revision}")
        lines += _training_lines(entry.training) + _metric_lines(entry.metrics)
        if entry.inference:
            lines.append("inference defaults: " + ", ".join(f"{k} {v}" for k, v in entry.inference.items()))
        for line in lines:
            reporter.out.print(line, highlight=False, markup=False)


def _training_lines(training: dict) -> list[str]:
    """The training record, one fact a line; each phase with its exact command."""
    lines = [f"training {key.replace('_', ' ')}: {value if isinstance(value, str) else json.dumps(value)}"
             for key, value in training.items() if key != "phases"]
    for number, phase in enumerate(training.get("phases", []), 1):
        minutes = f", {phase['wall_seconds'] / 60:.0f} min" if phase.get("wall_seconds") else ""
        validation = phase.get("final_validation") or {}
        scores = (f"; validation PSNR {validation['val_psnr']:.2f} dB (blurry {validation['blurry_psnr']:.2f})"
                  if "val_psnr" in validation and "blurry_psnr" in validation else "")
        lines.append(f"training phase {number}: {phase.get('steps')} steps{minutes} on {phase.get('hardware', '?')}"
                     f"{scores}")
        lines.append(f"  {phase.get('command', '')}")
        if phase.get("stopped"):
            lines.append(f"  stopped {phase['stopped']}")
    return lines


def _metric_lines(metrics: list) -> list[str]:
    """Measured quality, one set and setting a line, beside the blurry input's score."""
    lines = []
    for row in metrics:
        blurry = f" (blurry {row['blurry_psnr']:.2f} dB)" if "blurry_psnr" in row else ""
        speed = f", {row['seconds_per_mp']} s/MP" if row.get("seconds_per_mp") is not None else ""
        lines.append(f"measured on {row.get('set')} ({row.get('images', 'all')}), {row.get('setting', 'default')}: "
                     f"PSNR {row.get('psnr')} dB{blurry}, SSIM {row.get('ssim')}{speed}")
    commands = sorted({row["command"] for row in metrics if row.get("command")})
    lines += [f"measured with: {command}" for command in commands]
    return lines


@app.command("download")
def download(
    names: Annotated[Optional[List[str]], typer.Argument(
        help="Model names or hf://ORG/REPO/FILE[@REVISION] (default: the default model).", show_default=False)] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every model that has a checkpoint.")] = False,
    to: Annotated[Optional[Path], typer.Option("--to", help="Also copy the files into this folder, to carry "
                                                            "them to a machine without network.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch checkpoints into the cache now (verified), so later runs need no network."""
    reporter = Reporter()
    with exit_on_errors(reporter):
        from deblur import hub
        from deblur.files import copy_atomic

        manifest, store = _catalogue()
        if names and all_models:
            raise UsageError("name models or pass --all, not both")
        if all_models:
            targets = [entry for entry in manifest.models.values() if entry.files]
        else:
            targets = [name if hub.is_reference(name) else manifest.entry(name)
                       for name in (names or [manifest.default_model])]
        results, failed = [], 0
        for target in targets:
            label = str(target) if isinstance(target, str) else target.name
            try:
                with reporter.downloads() as progress:
                    if isinstance(target, str):
                        resolved = {"weights": store.fetch_reference(hub.HubReference.parse(target), manifest,
                                                                     progress=progress)}
                    else:
                        resolved = store.fetch(target, progress=progress)
                for role, file in resolved.items():
                    copied = None
                    if to is not None:
                        copied = Path(to) / file.path.name
                        if file.path.resolve() != copied.resolve():
                            copy_atomic(file.path, copied)
                    results.append({"model": label, "role": role, "path": str(file.path), "origin": file.origin,
                                    "verification": file.verification, "copied_to": copied and str(copied)})
                    reporter.info(f"{label}: {file.path.name} ready ({file.verification})"
                                  f"{f', copied to {copied}' if copied else f', in {file.path.parent}'}")
            except ModelError as exc:
                failed += 1
                results.append({"model": label, "error": str(exc)})
                reporter.error(str(exc))
        if as_json:
            Reporter.data({"downloads": results})
        if failed:
            raise typer.Exit(ModelError.exit_code)


@app.command("import")
def import_folder(
    folder: Annotated[Path, typer.Argument(help="A folder written by `deblur models download --to`.")],
    as_json: JsonOption = False,
) -> None:
    """Put checkpoints carried in a folder into the cache; each is checked against the manifest first."""
    reporter = Reporter()
    with exit_on_errors(reporter):
        manifest, store = _catalogue()
        report = store.import_folder(manifest, folder)
        if as_json:
            Reporter.data({"imported": [{"model": m, "file": f} for m, f in report.imported],
                           "already_cached": [{"model": m, "file": f} for m, f in report.already],
                           "rejected": [{"model": m, "file": f, "reason": r} for m, f, r in report.rejected],
                           "unknown": report.unknown})
        for model, filename in report.imported:
            reporter.info(f"imported {filename} for {model}")
        for model, filename in report.already:
            reporter.info(f"{filename} for {model} was already cached")
        for model, filename, reason in report.rejected:
            reporter.error(f"not imported: {folder / filename} for {model}: {reason}")
        if report.unknown:
            reporter.detail(f"ignored files no model lists: {', '.join(report.unknown)}")
        if report.rejected:
            raise typer.Exit(ModelError.exit_code)
        if not report.imported and not report.already:
            raise InputError(f"'{folder}' holds no checkpoint file that the manifest lists")


@app.command("verify")
def verify(names: NamesArgument = None, as_json: JsonOption = False) -> None:
    """Re-hash every local checkpoint file against the manifest; damaged cached copies are deleted."""
    reporter = Reporter()
    with exit_on_errors(reporter):
        manifest, store = _catalogue()
        entries = _entries(manifest, names)
        statuses = [status for entry in entries for status in store.verify(entry)]
        for entry in entries:
            if not entry.files:
                reporter.info(f"{entry.name}: no checkpoint yet")
        if as_json:
            Reporter.data({"files": [status.as_json() for status in statuses]})
        for status in statuses:
            where = f" ({status.origin}, {status.path})" if status.path else ""
            text = "not downloaded" if status.status == "missing" else status.status
            line = f"{status.model}: {status.filename}{where}: {text}"
            if status.status not in ("ok", "missing"):
                reporter.error(line)
            else:
                reporter.info(line)
        if any(status.status not in ("ok", "missing") for status in statuses):
            raise typer.Exit(ModelError.exit_code)


@app.command("path")
def path(name: NameArgument, as_json: JsonOption = False) -> None:
    """Print where a model's checkpoint file(s) are on this machine (without downloading)."""
    reporter = Reporter()
    with exit_on_errors(reporter):
        manifest, store = _catalogue()
        entry = manifest.entry(name)
        statuses = store.locate(entry)
        if not statuses:
            raise ModelError(f"model '{name}' has no checkpoint yet")
        absent = [status.filename for status in statuses if status.path is None]
        if absent:
            raise ModelError(f"model '{name}' is not on this machine ({', '.join(absent)}); "
                             f"run `deblur models download {name}`")
        if as_json:
            Reporter.data({"model": name, "files": [status.as_json() for status in statuses]})
            return
        for status in statuses:
            reporter.out.print(str(status.path), highlight=False, markup=False, soft_wrap=True)


@app.command("rm")
def remove(names: Annotated[List[str], typer.Argument(help="Model names.", show_default=False)],
           as_json: JsonOption = False) -> None:
    """Delete models' cached files (bundled files are part of the package and stay)."""
    reporter = Reporter()
    with exit_on_errors(reporter):
        manifest, store = _catalogue()
        removed = []
        for entry in [manifest.entry(name) for name in names]:
            freed = store.remove(entry)
            removed.append({"model": entry.name, "freed_bytes": freed})
            if freed:
                reporter.info(f"removed {entry.name} from the cache ({human_size(freed)} freed)")
            else:
                reporter.info(f"{entry.name}: nothing cached"
                              + (" (its bundled checkpoint is part of the package)" if entry.bundled else ""))
        if as_json:
            Reporter.data({"removed": removed})
