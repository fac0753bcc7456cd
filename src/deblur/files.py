"""Atomic file writes: a reader sees the old file or the complete new one, never half of one.

Everything goes to a temporary file in the target folder, is flushed to disk, then renamed into
place; an interruption or a full disk leaves only what was there before.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

from deblur.errors import OutputError


def write_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write bytes to `path`. Without `overwrite`, an existing file is never replaced,
    even one that appears while we work."""
    with _temporary_beside(Path(path), overwrite) as f:
        f.write(data)


def copy_atomic(source: Path, path: Path, overwrite: bool = True) -> None:
    """Copy a (possibly large) file to `path` in chunks, with the same guarantees."""
    with open(source, "rb") as src, _temporary_beside(Path(path), overwrite) as f:
        shutil.copyfileobj(src, f, 1 << 20)


@contextmanager
def _temporary_beside(path: Path, overwrite: bool):
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder '{path.parent}': {exc.strerror}") from None
    try:
        try:
            with open(temp, "xb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise OutputError(f"cannot write '{path}': {exc.strerror or exc}") from None
        _move_into_place(temp, path, overwrite)
    finally:
        temp.unlink(missing_ok=True)


def _move_into_place(temp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # atomic and fails if the target exists
    except FileExistsError:
        raise OutputError(f"'{path}' already exists; use --overwrite or --skip-existing") from None
    except OSError:  # file systems without hard links
        if path.exists():
            raise OutputError(f"'{path}' already exists; use --overwrite or --skip-existing") from None
        os.replace(temp, path)
