"""Atomic file writes: a reader sees the old file or the complete new one, never half of one.

Everything goes to a temporary file in the target folder, is flushed to disk, then renamed into
place; an interruption or a full disk leaves only what was there before. A temporary file
carries its writer's process id, so one left by a killed process (SIGKILL, power loss) is
recognised and removed the next time that folder is prepared for writing.
"""

from __future__ import annotations

import os
import re
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


PARTIAL_NAME = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.partial$")  # what _partial_name writes


def _partial_name(name: str) -> str:
    """The hidden temporary name for `name`: the writer's process id, then a random tag."""
    return f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial"


def prepare_folder(folder: Path) -> None:
    """Make sure results can be written in `folder` before any work is done for them (OutputError if
    not), and remove temporary files that killed deblur processes left there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / _partial_name("deblur-write-check")
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write results in the folder '{folder}' ({exc.strerror or exc}); "
                          "choose another with --output or make it writable") from None
    for entry in folder.iterdir():
        match = PARTIAL_NAME.match(entry.name)
        if match and not _process_alive(int(match.group(1))):
            entry.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to another user
        return True
    return True


@contextmanager
def _temporary_beside(path: Path, overwrite: bool):
    temp = path.with_name(_partial_name(path.name))
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
