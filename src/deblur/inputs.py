"""From what the user typed to a list of (input, output) jobs.

Files, folders (optionally recursive, mirrored under --output) and quoted globs all work. Nothing
here touches a file: it only decides names, and refuses any plan that would overwrite an input,
write two results to one name, or replace an existing file without --overwrite.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

from deblur.errors import UsageError
from deblur.imageio import EXTENSIONS, FORMAT_EXTENSION, is_image_path

GLOB_CHARS = set("*?[")
SUPPORTED = "JPEG, PNG, TIFF, WebP or BMP photos"
COMPARE_SUFFIX = "_compare"
KERNEL_SUFFIX = "_kernel"


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path
    compare: Path | None = None  # side-by-side image, when asked for
    kernel: Path | None = None  # the blur kernel as a PNG (the shake model), when asked for


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, reason): not an error
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (path, reason): counts as a failure
    ignored: list[tuple[Path, str]] = field(default_factory=list)  # our own earlier results in a folder or glob
    matched: set[Path] = field(default_factory=set)  # files found by a pattern, not named one by one


@dataclass(frozen=True)
class OutputOptions:
    output_dir: Path | None = None  # None: beside each input
    suffix: str = "_deblur"
    format: str = "auto"  # auto keeps the input's own extension
    overwrite: bool = False
    skip_existing: bool = False
    compare: bool = False
    kernel: bool = False


def collect(paths: list[str], recursive: bool, options: OutputOptions, plan: Plan) -> list[tuple[Path, Path | None]]:
    """Expand the user's paths into image files, each with the folder it was found under (or None)."""
    found: list[tuple[Path, Path | None]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found.extend(_scan_folder(path, recursive, options, plan))
        elif path.is_file():
            if is_image_path(path):
                found.append((path, None))
            else:  # named by the user and not restored: a failure, not a skip
                plan.failed.append((path, f"'{path.suffix or path.name}' files are not supported; "
                                          f"use {SUPPORTED}"))
        elif GLOB_CHARS & set(raw):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            files = [m for m in matches if m.is_file() and is_image_path(m)]
            if not files:
                plan.failed.append((path, "no image files match this pattern"))
            for match in files:
                # as in a folder: our own results are never inputs again unless named one by one
                if _looks_like_output(match, options.suffix):
                    plan.ignored.append((match, f"looks like a deblur result (name ends in '{options.suffix}')"))
                else:
                    plan.matched.add(match)
                    found.append((match, None))
        else:
            plan.failed.append((path, "no such file or folder"))
    return found


def _scan_folder(folder: Path, recursive: bool, options: OutputOptions, plan: Plan):
    output_dir = options.output_dir.resolve() if options.output_dir else None
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(candidates):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue  # hidden files, our own .partial temp files
        if output_dir and output_dir in path.resolve().parents:
            continue  # never re-process results written under the input folder
        if not path.is_file():
            continue
        if not is_image_path(path):
            plan.skipped.append((path, "not an image (by its extension)"))
        elif _looks_like_output(path, options.suffix):
            plan.ignored.append((path, f"looks like a deblur result (name ends in '{options.suffix}')"))
        else:
            yield path, folder


def _looks_like_output(path: Path, suffix: str) -> bool:
    stem = path.stem
    return bool(suffix) and any(stem.endswith(suffix + extra) for extra in ("", COMPARE_SUFFIX, KERNEL_SUFFIX))


def output_path(source: Path, root: Path | None, options: OutputOptions, extra: str = "",
                extension: str | None = None) -> Path:
    if names_one_file(options):  # -o sharp.jpg: that file, and its companions named after it
        target = options.output_dir
        return target.with_name(f"{target.stem}{extra}{extension or target.suffix}")
    extension = extension or (source.suffix if options.format == "auto" else FORMAT_EXTENSION[options.format])
    name = f"{source.stem}{options.suffix}{extra}{extension}"
    if options.output_dir is None:
        return source.with_name(name)
    relative_dir = source.parent.relative_to(root) if root else Path()
    return options.output_dir / relative_dir / name


def names_one_file(options: OutputOptions) -> bool:
    """`-o sharp.jpg`: an output with an image extension that is not an existing folder is one file."""
    target = options.output_dir
    return target is not None and is_image_path(target) and not target.is_dir()


def _check_one_file_output(found, photos: set[Path], options: OutputOptions) -> None:
    """`-o FILE` takes exactly one photo named on its own, and its extension chooses the format."""
    target = options.output_dir
    if len(photos) != 1 or found[0][1] is not None:
        given = "a folder is" if len(photos) == 1 else f"{len(photos)} photos are"
        raise UsageError(f"--output '{target}' names one file, but {given} given; "
                         "give --output a folder (e.g. -o restored/) for more than one photo")
    if options.format not in ("auto", EXTENSIONS[target.suffix.lower()]):
        raise UsageError(f"--output '{target}' and --format {options.format} disagree; "
                         "the file's extension chooses the format, so drop --format or rename the file")


def plan_jobs(paths: list[str], recursive: bool, options: OutputOptions) -> Plan:
    """Decide every output name up front, so nothing is computed for a job that cannot be written."""
    plan = Plan()
    found = collect(paths, recursive, options, plan)
    inputs = {source.resolve() for source, _ in found}
    if found and names_one_file(options):
        _check_one_file_output(found, inputs, options)
    claimed: dict[Path, Path] = {}  # resolved output -> the input that writes it
    seen: set[Path] = set()
    for source, root in found:
        if source.resolve() in seen:
            continue  # the same file named twice, e.g. by a folder and a glob
        seen.add(source.resolve())
        output = output_path(source, root, options)
        compare = output_path(source, root, options, COMPARE_SUFFIX) if options.compare else None
        kernel = output_path(source, root, options, KERNEL_SUFFIX, ".png") if options.kernel else None
        problem = _output_problem((output, compare, kernel), inputs, claimed, options)
        if problem == "exists" and (options.skip_existing or root is not None or source in plan.matched):
            # Found in a folder or by a pattern: re-running the same command resumes an interrupted batch.
            plan.skipped.append((source, f"'{output}' already exists (--overwrite to redo it)"))
        elif problem == "exists":
            plan.failed.append((source, f"'{output}' already exists; use --overwrite to replace it "
                                        "or --skip-existing to skip it"))
        elif problem:
            plan.failed.append((source, problem))
        else:
            for target in (output, compare, kernel):
                if target:
                    claimed[target.resolve()] = source.resolve()
            plan.jobs.append(Job(source, output, compare, kernel))
    return plan


def _output_problem(targets, inputs, claimed, options) -> str | None:
    for target in targets:
        if target is None:
            continue
        resolved = target.resolve()
        if resolved in inputs:
            return f"the result would overwrite the input '{target}'; set --suffix or --output"
        if resolved in claimed:
            return f"'{claimed[resolved]}' already writes '{target}'; use --format auto or rename one"
        if target.exists() and not options.overwrite:
            return "exists"
    return None


def format_name(value: str) -> str:
    """Normalise a --format value (jpg -> jpeg, tif -> tiff); 'auto' passes through."""
    value = value.lower().lstrip(".")
    name = value if value == "auto" else EXTENSIONS.get("." + value, value)
    if name != "auto" and name not in FORMAT_EXTENSION:
        raise UsageError(f"unknown --format '{value}'; use auto, {', '.join(FORMAT_EXTENSION)}")
    return name
