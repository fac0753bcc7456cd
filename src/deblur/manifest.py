"""The model catalogue, weights_manifest.json: what each checkpoint is, where to get it, how to check it.

One entry per model::

    "xydeblur": {
      "arch": "xydeblur", "config": {"width": 32, "blocks": 6}, "description": "...",
      "files": {"weights": {"filename": "xydeblur.safetensors", "sha256": "<64 hex>", "size": 123}},
      "sources": {"bundled": true, "hub": {"repo_id": "org/repo", "revision": "<40-hex commit>"}},
      "licence": "...", "training": {"data": "...", "recipe": "..."},
      "metrics": [{"set": "...", "psnr": 30.1, "ssim": 0.91, "command": "..."}],
      "inference": {"precision": "auto", "overlap": 32}
    }

`inference` holds the model's defaults for options the user leaves unset.

The loader checks every field and names the first problem, so a typo fails loudly instead of
silently meaning "no checksum". `DEBLUR_MANIFEST=FILE` replaces the bundled catalogue (a private
model zoo, or tests).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from deblur.errors import ModelError

SCHEMA = 1
ENTRY_KEYS = {"arch", "config", "description", "files", "sources", "licence", "training", "metrics", "inference"}
SHA256 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
PRECISIONS = ("auto", "fp32")  # fp32: half precision hurts this checkpoint, so `auto` keeps fp32


@dataclass(frozen=True)
class FileSpec:
    """One file of a checkpoint, as the manifest promises it."""

    role: str
    filename: str
    sha256: str
    size: int


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face Hub repository, pinned to a commit so a cached copy never needs the network."""

    repo_id: str
    revision: str

    def reference(self, filename: str) -> str:
        return f"hf://{self.repo_id}/{filename}@{self.revision}"


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    arch: str
    config: dict
    files: dict  # role -> FileSpec
    description: str = ""
    bundled: bool = False
    hub: HubSource | None = None
    licence: str | None = None
    training: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)
    inference: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(spec.size for spec in self.files.values())

    def as_json(self) -> dict:
        return {
            "name": self.name, "arch": self.arch, "config": self.config, "description": self.description,
            "files": {role: {"filename": s.filename, "sha256": s.sha256, "size": s.size}
                      for role, s in self.files.items()},
            "sources": {"bundled": self.bundled,
                        "hub": None if self.hub is None else {"repo_id": self.hub.repo_id,
                                                              "revision": self.hub.revision}},
            "licence": self.licence, "training": self.training, "metrics": self.metrics,
            "inference": self.inference,
        }


@dataclass(frozen=True)
class Manifest:
    default_model: str
    models: dict  # name -> ManifestEntry

    def entry(self, name: str) -> ManifestEntry:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ModelError(f"unknown model '{name}'; known models: {known}") from None


class _Checker:
    """Raises ModelError naming the file and the field at fault."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, what: str):
        raise ModelError(f"malformed {self.where}: {what}")

    def expect(self, value, kind, what: str):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(f"{what} must be {names}, got {json.dumps(value)}")
        return value


def parse_manifest(data: dict, where: str = "weights_manifest.json") -> Manifest:
    """Check the manifest's shape and build typed entries; a malformed one is a clear error."""
    check = _Checker(where)
    check.expect(data, dict, "the manifest")
    if data.get("schema", SCHEMA) != SCHEMA:
        check.fail(f"schema {data.get('schema')!r} is not supported by this deblur (it reads schema {SCHEMA}); "
                   "upgrade deblur")
    models = {name: _parse_entry(check, name, raw)
              for name, raw in check.expect(data.get("models"), dict, "'models'").items()}
    default = data.get("default_model")
    if default not in models:
        check.fail(f"default_model {default!r} is not one of the models")
    return Manifest(default_model=default, models=models)


def _parse_entry(check: _Checker, name: str, raw) -> ManifestEntry:
    at = f"model '{name}'"
    check.expect(raw, dict, at)
    unknown = sorted(set(raw) - ENTRY_KEYS)
    if unknown:
        check.fail(f"{at} has unknown field '{unknown[0]}' (known: {', '.join(sorted(ENTRY_KEYS))})")
    files = {role: _parse_file(check, f"{at} file '{role}'", role, spec)
             for role, spec in check.expect(raw.get("files", {}), dict, f"{at} 'files'").items()}
    sources = check.expect(raw.get("sources", {}), dict, f"{at} 'sources'")
    hub = sources.get("hub")
    if hub is not None:
        check.expect(hub, dict, f"{at} sources.hub")
        repo_id, revision = hub.get("repo_id"), hub.get("revision")
        if not isinstance(repo_id, str) or not REPO_ID.match(repo_id):
            check.fail(f"{at} sources.hub.repo_id must look like 'org/name', got {repo_id!r}")
        if not isinstance(revision, str) or not COMMIT.match(revision):
            check.fail(f"{at} sources.hub.revision must be a 40-hex commit (a branch can change under you), "
                       f"got {revision!r}")
        hub = HubSource(repo_id, revision)
    inference = dict(check.expect(raw.get("inference", {}), dict, f"{at} 'inference'"))
    if inference.get("precision", "auto") not in PRECISIONS:
        check.fail(f"{at} inference.precision must be one of {', '.join(PRECISIONS)}")
    for key in ("overlap", "steps_cpu", "steps_gpu"):  # steps: diffusion models' default --steps
        if key in inference and check.expect(inference[key], int, f"{at} inference.{key}") < 0:
            check.fail(f"{at} inference.{key} must not be negative")
    licence = raw.get("licence")
    if licence is not None:
        check.expect(licence, str, f"{at} 'licence'")
    return ManifestEntry(
        name=name,
        arch=check.expect(raw.get("arch"), str, f"{at} 'arch'"),
        config=dict(check.expect(raw.get("config", {}), dict, f"{at} 'config'")),
        files=files,
        description=check.expect(raw.get("description", ""), str, f"{at} 'description'"),
        bundled=check.expect(sources.get("bundled", False), bool, f"{at} sources.bundled"),
        hub=hub,
        licence=licence,
        training=dict(check.expect(raw.get("training", {}), dict, f"{at} 'training'")),
        metrics=list(check.expect(raw.get("metrics", []), list, f"{at} 'metrics'")),
        inference=inference,
    )


def _parse_file(check: _Checker, at: str, role: str, spec) -> FileSpec:
    check.expect(spec, dict, at)
    filename = spec.get("filename", "")
    # The name is joined to the package and cache folders: it may not lead out of them.
    if not isinstance(filename, str) or not filename or Path(filename).name != filename or filename in (".", ".."):
        check.fail(f"{at} must be a plain file name, got {filename!r}")
    sha256 = spec.get("sha256")
    if not isinstance(sha256, str) or not SHA256.match(sha256):
        check.fail(f"{at} needs a 'sha256' of 64 lowercase hex digits, got {sha256!r}")
    size = check.expect(spec.get("size"), int, f"{at} 'size'")
    if size <= 0:
        check.fail(f"{at} 'size' must be positive, got {size}")
    return FileSpec(role=role, filename=filename, sha256=sha256, size=size)


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """The catalogue at `path`, else at $DEBLUR_MANIFEST, else the one shipped in the package."""
    path = path or os.environ.get("DEBLUR_MANIFEST") or None
    if path is None:
        text = resources.files("deblur").joinpath("weights_manifest.json").read_text()
        where = "the bundled weights_manifest.json"
    else:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ModelError(f"cannot read the manifest '{path}': {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"malformed {where}: {exc}") from None
    return parse_manifest(data, where)
