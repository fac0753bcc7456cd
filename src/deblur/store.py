"""Where checkpoint files live on this machine, how they get there, and proof that they are intact.

A manifest model's file is looked for, in order: bundled in the package (src/deblur/weights/), in
the cache (<cache>/models/<name>/), then downloaded from its hub repository at the pinned commit
into the cache. Every file is checked against the manifest's sha256 before it is used; a cached
copy that fails is deleted. `hf://` references without a manifest entry go to the hub's own cache
layout under <cache>/hub and are checked against the hub's ETag where that is a sha256.

The cache is `DEBLUR_CACHE_DIR`, else the platform's user cache folder (~/.cache/deblur on Linux).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from deblur import hub
from deblur.checksums import StampedHasher, sha256_file
from deblur.errors import InputError, ModelError
from deblur.files import copy_atomic
from deblur.manifest import FileSpec, Manifest, ManifestEntry

BUNDLED_DIR = Path(__file__).with_name("weights")

# How a file's integrity was established, for reports.
VERIFIED = "sha256 from the manifest"
VERIFIED_BY_ETAG = "sha256 from the hub's ETag"
UNVERIFIED = "unverified"
NOT_CHECKED = "not checked (a local file you named)"


def cache_root() -> Path:
    configured = os.environ.get("DEBLUR_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("deblur", appauthor=False))


@dataclass(frozen=True)
class ResolvedFile:
    """A checkpoint file on this machine and how far it can be trusted."""

    path: Path
    origin: str  # "file", "bundled", "cache" or "hub"
    verification: str


@dataclass(frozen=True)
class FileStatus:
    """One manifest file as `deblur models list/verify` reports it."""

    model: str
    role: str
    filename: str
    origin: str  # "bundled", "cache", "hub" (would download), "missing"
    path: Path | None
    status: str = ""  # verify: "ok", "mismatch (deleted)", "mismatch", "missing"

    def as_json(self) -> dict:
        return {"model": self.model, "role": self.role, "filename": self.filename, "origin": self.origin,
                "path": None if self.path is None else str(self.path), "status": self.status or None}


@dataclass
class ImportReport:
    imported: list  # (model, filename)
    already: list  # (model, filename): an identical copy was cached
    rejected: list  # (model, filename, reason)
    unknown: list  # file names in the folder that no manifest entry lists


class ModelStore:
    def __init__(self, root: Path | None = None, bundled_dir: Path = BUNDLED_DIR):
        self.root = Path(root) if root is not None else cache_root()
        self.bundled_dir = Path(bundled_dir)
        self.hasher = StampedHasher(self.root / "verified.json")

    # -- where things are -------------------------------------------------------------------------

    def model_dir(self, entry: ManifestEntry) -> Path:
        return self.root / "models" / entry.name

    def bundled_path(self, entry: ManifestEntry, spec: FileSpec) -> Path | None:
        path = self.bundled_dir / spec.filename
        return path if entry.bundled and path.is_file() else None

    def cached_path(self, entry: ManifestEntry, spec: FileSpec) -> Path | None:
        path = self.model_dir(entry) / spec.filename
        return path if path.is_file() else None

    def locate(self, entry: ManifestEntry) -> list[FileStatus]:
        """Where each file would load from, without touching the network or hashing anything."""
        found = []
        for role, spec in entry.files.items():
            bundled, cached = self.bundled_path(entry, spec), self.cached_path(entry, spec)
            if bundled:
                origin, path = "bundled", bundled
            elif cached:
                origin, path = "cache", cached
            else:
                origin, path = ("hub" if entry.hub else "missing"), None
            found.append(FileStatus(entry.name, role, spec.filename, origin, path))
        return found

    # -- getting verified files --------------------------------------------------------------------

    def fetch(self, entry: ManifestEntry, offline: bool = False, progress=None) -> dict[str, ResolvedFile]:
        """Verified local copies of all of `entry`'s files, downloading what is missing."""
        if not entry.files:
            raise ModelError(f"no trained checkpoint for model '{entry.name}' is available yet; "
                             "pass one with --weights FILE.safetensors")
        return {role: self._fetch_file(entry, spec, offline, progress) for role, spec in entry.files.items()}

    def _fetch_file(self, entry, spec, offline, progress) -> ResolvedFile:
        bundled = self.bundled_path(entry, spec)
        if bundled:
            if self._matches(bundled, spec):
                return ResolvedFile(bundled, "bundled", VERIFIED)
            raise ModelError(f"the bundled checkpoint '{bundled}' of model '{entry.name}' is damaged (its "
                             f"sha256 differs from the manifest); {repair_hint(bundled)}")
        cached = self.cached_path(entry, spec)
        if cached:
            self._check_cached(entry, spec, cached, "the cached copy")
            return ResolvedFile(cached, "cache", VERIFIED)
        if entry.hub is None:
            raise ModelError(f"model '{entry.name}' needs {spec.filename}, which is neither bundled nor in "
                             f"{self.model_dir(entry)}, and the manifest lists no hub to download it from; "
                             "copy it there with `deblur models import DIR`")
        hint = self._unavailable_hint(entry)
        if offline:  # decided here, before any network code runs: no request, no retry sleeps
            raise ModelError(f"model '{entry.name}' is not available offline: {spec.filename} is not in "
                             f"{self.model_dir(entry)}{hint}")
        path = hub.download(entry.hub.repo_id, spec.filename, entry.hub.revision,
                            local_dir=self.model_dir(entry), progress=progress, unavailable_hint=hint)
        self._check_cached(entry, spec, path, f"the file downloaded from {entry.hub.reference(spec.filename)}")
        return ResolvedFile(path, "hub", VERIFIED)

    def _check_cached(self, entry, spec, path: Path, what: str, trust_stamp: bool = True) -> None:
        if self._matches(path, spec, trust_stamp):
            return
        actual = sha256_file(path)
        self._delete_cached(entry, spec)
        raise ModelError(f"{what} of model '{entry.name}' ({path}) does not match the manifest: sha256 "
                         f"{actual[:12]}... instead of {spec.sha256[:12]}...; it was deleted and not loaded. "
                         f"Run `deblur models download {entry.name}` to fetch it again")

    def _matches(self, path: Path, spec: FileSpec, trust_stamp: bool = True) -> bool:
        # The size check is free and catches truncated copies before hashing.
        return path.stat().st_size == spec.size and self.hasher.sha256(path, trust_stamp) == spec.sha256

    def _delete_cached(self, entry: ManifestEntry, spec: FileSpec) -> None:
        folder = self.model_dir(entry)
        self.hasher.forget(folder / spec.filename)
        (folder / spec.filename).unlink(missing_ok=True)
        # huggingface_hub's note that the file is complete, which must go with it
        (folder / ".cache" / "huggingface" / "download" / f"{spec.filename}.metadata").unlink(missing_ok=True)

    @staticmethod
    def _unavailable_hint(entry: ManifestEntry) -> str:
        return (f"; run `deblur models download {entry.name}` while connected, or carry it from a connected "
                f"machine: `deblur models download {entry.name} --to DIR` there, `deblur models import DIR` here")

    # -- hf:// references ---------------------------------------------------------------------------

    def fetch_reference(self, ref: hub.HubReference, manifest: Manifest, offline: bool = False,
                        progress=None) -> ResolvedFile:
        """A `hf://` file: a manifest model's file if it is one (checked by sha256), else the hub's copy."""
        for entry in manifest.models.values():
            if entry.hub and entry.hub.repo_id == ref.repo_id and ref.revision in (None, entry.hub.revision):
                for spec in entry.files.values():
                    if spec.filename == ref.filename:
                        return self._fetch_file(entry, spec, offline, progress)
        hint = (f"; while connected, run the same command once (or `deblur models download {ref}`) "
                "to cache it, or download the file yourself and pass --weights FILE")
        path = hub.download(ref.repo_id, ref.filename, ref.revision, cache_dir=self.root / "hub",
                            offline=offline, progress=progress, unavailable_hint=hint)
        expected = hub.etag_sha256(path)
        if expected is None:
            return ResolvedFile(path, "hub", UNVERIFIED)
        actual = self.hasher.sha256(path)
        if actual != expected:
            blob = Path(os.path.realpath(path))
            self.hasher.forget(path)
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            raise ModelError(f"{ref} does not match the sha256 the hub announced ({expected[:12]}... , got "
                             f"{actual[:12]}...); it was deleted and not loaded. Run the command again")
        return ResolvedFile(path, "hub", VERIFIED_BY_ETAG)

    # -- carrying, checking and removing ------------------------------------------------------------

    def export(self, entry: ManifestEntry, folder: Path, offline: bool = False, progress=None) -> list[Path]:
        """Copy `entry`'s verified files into `folder`, for `import` on another machine."""
        written = []
        for role, resolved in self.fetch(entry, offline, progress).items():
            target = Path(folder) / entry.files[role].filename
            if resolved.path.resolve() != target.resolve():
                copy_atomic(resolved.path, target)
            written.append(target)
        return written

    def import_folder(self, manifest: Manifest, folder: Path) -> ImportReport:
        """Put every file in `folder` that a manifest entry lists, and whose sha256 matches, in the cache."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"'{folder}' is not a folder; pass the folder `deblur models download --to` wrote")
        report = ImportReport([], [], [], [])
        listed = set()
        for entry in manifest.models.values():
            for spec in entry.files.values():
                listed.add(spec.filename)
                candidate = folder / spec.filename
                if candidate.is_file():
                    self._import_file(entry, spec, candidate, report)
        report.unknown = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in listed)
        return report

    def _import_file(self, entry, spec, candidate: Path, report: ImportReport) -> None:
        key = (entry.name, spec.filename)
        if candidate.stat().st_size != spec.size or sha256_file(candidate) != spec.sha256:
            report.rejected.append((*key, "its sha256 differs from the manifest"))
            return
        cached = self.cached_path(entry, spec)
        if cached and self._matches(cached, spec):
            report.already.append(key)
            return
        copy_atomic(candidate, self.model_dir(entry) / spec.filename)
        report.imported.append(key)

    def verify(self, entry: ManifestEntry) -> list[FileStatus]:
        """Re-hash every local copy of `entry`'s files (ignoring stamps); damaged cached copies are deleted."""
        results = []
        for role, spec in entry.files.items():
            copies = [("bundled", self.bundled_path(entry, spec)), ("cache", self.cached_path(entry, spec))]
            copies = [(origin, path) for origin, path in copies if path]
            if not copies:
                results.append(FileStatus(entry.name, role, spec.filename, "missing", None, "missing"))
            for origin, path in copies:
                if self._matches(path, spec, trust_stamp=False):
                    status = "ok" if _finite(path) else "weights not finite (NaN or infinity)"
                elif origin == "cache":
                    self._delete_cached(entry, spec)
                    status = "mismatch (deleted)"
                else:
                    status = "mismatch"
                results.append(FileStatus(entry.name, role, spec.filename, origin, path, status))
        return results

    def remove(self, entry: ManifestEntry) -> int:
        """Delete `entry`'s cached files; return the bytes freed. Bundled files are never touched."""
        folder = self.model_dir(entry)
        if not folder.is_dir():
            return 0
        freed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        for spec in entry.files.values():
            self.hasher.forget(folder / spec.filename)
        shutil.rmtree(folder)
        return freed


def repair_hint(bundled: Path) -> str:
    """How to get an intact copy of a file that ships inside the package, for the way it was installed.

    Never `pip install deblur`: the 'deblur' on the package index is an unrelated project."""
    for folder in Path(bundled).resolve().parents:
        if (folder / ".git").exists():
            relative = Path(bundled).resolve().relative_to(folder)
            return f"restore it from your git checkout: git -C {folder} checkout -- {relative}"
    return ("reinstall deblur from the wheel or repository you installed it from, with pip's "
            "--force-reinstall (not `pip install deblur`: the package of that name on PyPI is another project)")


def _finite(path: Path) -> bool:
    """Whether every floating-point tensor of a safetensors file is finite (other files: not checked)."""
    if path.suffix != ".safetensors":
        return True
    from safetensors.torch import load_file

    from deblur.checkpoints import non_finite_tensors

    return not non_finite_tensors(load_file(str(path)))
