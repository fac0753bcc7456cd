"""SHA-256 of checkpoint files, remembered so that a verified file is not re-hashed on every run.

A stamp records (size, mtime) -> digest per file. Any change to the file changes its size or mtime
and forces a fresh hash; deleting the stamp file only costs one re-hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from deblur.errors import OutputError
from deblur.files import write_atomic

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class StampedHasher:
    """sha256 with a small JSON memo in `stamp_file` (keyed by absolute path, size and mtime)."""

    def __init__(self, stamp_file: Path):
        self.stamp_file = Path(stamp_file)

    def sha256(self, path: Path, trust_stamp: bool = True) -> str:
        path = Path(path).resolve()
        stat = path.stat()
        key, fingerprint = str(path), [stat.st_size, stat.st_mtime_ns]
        stamps = self._read()
        stamp = stamps.get(key)
        if trust_stamp and stamp and stamp.get("fingerprint") == fingerprint:
            return stamp["sha256"]
        digest = sha256_file(path)
        stamps[key] = {"fingerprint": fingerprint, "sha256": digest}
        self._write(stamps)
        return digest

    def forget(self, path: Path) -> None:
        stamps = self._read()
        if stamps.pop(str(Path(path).resolve()), None) is not None:
            self._write(stamps)

    def _read(self) -> dict:
        try:
            data = json.loads(self.stamp_file.read_text())
        except (OSError, ValueError):
            return {}  # missing or damaged memo: hash again
        return data if isinstance(data, dict) else {}

    def _write(self, stamps: dict) -> None:
        # Drop stamps of files that are gone, so the memo does not grow forever.
        live = {key: value for key, value in stamps.items() if os.path.exists(key)}
        try:
            write_atomic(self.stamp_file, json.dumps(live, indent=1).encode(), overwrite=True)
        except OutputError:
            pass  # a read-only cache only costs a re-hash next time
