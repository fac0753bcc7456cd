"""Restoring a list of jobs: one bad file is reported and the batch goes on.

Model and device failures stop the batch (every file would fail the same way); a file that
cannot be read, restored or written is recorded and the next one starts. Ctrl-C propagates
after the file being written is discarded (writes are atomic).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from deblur.errors import DeblurError, DeviceError, ModelError
from deblur.files import prepare_folder, write_atomic
from deblur.imageio import read_photo, side_by_side, write_photo
from deblur.inputs import Job
from deblur.restorer import Restorer
from deblur.shake.kernel_file import kernel_png, with_kernel_inset


@dataclass(frozen=True)
class WriteOptions:
    format: str = "auto"
    quality: int = 95
    overwrite: bool = False
    keep_metadata: bool = True


@dataclass
class FileResult:
    source: Path
    output: Path | None
    ok: bool
    error: str | None = None
    seconds: float = 0.0
    megapixels: float = 0.0
    tile: int | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # what a step around the restoration reported

    def as_json(self) -> dict:
        if not self.ok:
            return {"path": str(self.source), "error": self.error}
        return {"input": str(self.source), "output": str(self.output), "seconds": round(self.seconds, 3),
                "megapixels": round(self.megapixels, 3), "tile": self.tile, "warnings": self.warnings,
                **self.details}


# A context entered around each photo's restoration with its pixels (test-time adaptation);
# what it yields (an object with as_json(), or None) is recorded in the result.
Around = Callable[[object], object]


def restore_file(job: Job, restorer: Restorer, options: WriteOptions = WriteOptions(),
                 on_tile: Callable[[int, int], None] | None = None, around: Around | None = None) -> FileResult:
    """Read, restore and atomically write one photo (and its comparison image)."""
    start = time.perf_counter()
    photo = read_photo(job.source)
    with (around(photo.pixels) if around else nullcontext()) as extra:
        pixels, report = restorer.restore(photo.pixels, on_tile)
    restored = replace(photo, pixels=pixels)
    fmt = None if options.format == "auto" else options.format
    warnings = list(report.warnings)
    warnings += write_photo(restored, job.output, fmt, options.quality, options.overwrite, options.keep_metadata)
    if job.compare:
        after = restored if report.kernel is None else replace(restored, pixels=with_kernel_inset(pixels, report.kernel))
        write_photo(side_by_side(photo, after), job.compare, fmt, options.quality, options.overwrite,
                    options.keep_metadata)
    if job.kernel and report.kernel is not None:
        write_atomic(job.kernel, kernel_png(report.kernel), options.overwrite)
    details = {**report.details, **(extra.as_json() if extra is not None else {})}
    return FileResult(source=job.source, output=job.output, ok=True, seconds=time.perf_counter() - start,
                      megapixels=photo.height * photo.width / 1e6, tile=report.tile, warnings=warnings,
                      details=details)


def run_batch(jobs: list[Job], restorer: Restorer, options: WriteOptions = WriteOptions(),
              on_start: Callable[[Job], None] | None = None,
              on_tile: Callable[[int, int], None] | None = None,
              on_done: Callable[[FileResult], None] | None = None,
              around: Around | None = None) -> list[FileResult]:
    results = []
    prepared: set[Path] = set()  # output folders checked and cleaned in this batch
    for job in jobs:
        if on_start:
            on_start(job)
        try:
            for folder in {target.parent for target in (job.output, job.compare, job.kernel) if target} - prepared:
                prepare_folder(folder)  # before the work: a photo is never restored only to fail its write
                prepared.add(folder)
            result = restore_file(job, restorer, options, on_tile, around)
        except (ModelError, DeviceError):
            raise
        except DeblurError as exc:
            result = FileResult(job.source, None, ok=False, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken file must not end the batch
            result = FileResult(job.source, None, ok=False,
                                error=f"unexpected {type(exc).__name__}: {exc} (please report this)")
        results.append(result)
        if on_done:
            on_done(result)
    return results
