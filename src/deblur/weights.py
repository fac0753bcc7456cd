"""The model catalogue (weights_manifest.json) and turning a model name into a loaded network.

Resolution order: an explicit `--weights FILE` > a checkpoint bundled in the package.
(The cache and the hub download join this order later.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from deblur.archs.registry import ArchSpec, build_network, get_arch
from deblur.checkpoints import checkpoint_arch, read_checkpoint
from deblur.errors import ModelError

BUNDLED_DIR = Path(__file__).with_name("weights")


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    arch: str
    config: dict
    files: dict  # role -> {"filename", "sha256", "size"}
    description: str = ""
    licence: str | None = None
    inference: dict = field(default_factory=dict)


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


def parse_manifest(data: dict, where: str = "weights_manifest.json") -> Manifest:
    """Check the manifest's shape and build typed entries; a malformed one is a clear error."""
    def fail(what):
        raise ModelError(f"malformed {where}: {what}")

    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        fail("expected an object with a 'models' object")
    models = {}
    for name, raw in data["models"].items():
        if not isinstance(raw, dict) or not isinstance(raw.get("arch"), str):
            fail(f"model '{name}' needs an 'arch' string")
        files = raw.get("files", {})
        for role, spec in files.items():
            filename = spec.get("filename", "") if isinstance(spec, dict) else ""
            if not filename or Path(filename).name != filename or filename in (".", ".."):
                fail(f"model '{name}' file '{role}' must be a plain file name, got {filename!r}")
        models[name] = ManifestEntry(
            name=name, arch=raw["arch"], config=dict(raw.get("config", {})), files=dict(files),
            description=raw.get("description", ""), licence=raw.get("licence"),
            inference=dict(raw.get("inference", {})),
        )
    default = data.get("default_model")
    if default not in models:
        fail(f"default_model {default!r} is not one of the models")
    return Manifest(default_model=default, models=models)


def load_manifest(path: str | Path | None = None) -> Manifest:
    if path is None:
        text = resources.files("deblur").joinpath("weights_manifest.json").read_text()
        where = "the bundled weights_manifest.json"
    else:
        text, where = Path(path).read_text(), str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"malformed {where}: {exc}") from None
    return parse_manifest(data, where)


@dataclass
class LoadedModel:
    """A network ready for inference and what the pipeline needs to know about it."""

    name: str
    spec: ArchSpec
    config: dict
    network: object  # torch.nn.Module
    source: str  # where the weights came from

    @property
    def bytes_per_pixel(self) -> float:
        return self.spec.bytes_per_pixel(self.config)


def resolve_weights(entry: ManifestEntry, weights: str | Path | None) -> Path:
    """The checkpoint file to load for `entry`, or ModelError saying how to get one."""
    if weights is not None:
        return Path(weights).expanduser()
    spec = entry.files.get("weights")
    if spec:
        bundled = BUNDLED_DIR / spec["filename"]
        if bundled.is_file():
            return bundled
    raise ModelError(
        f"no trained checkpoint for model '{entry.name}' is installed yet; "
        "pass one with --weights FILE.safetensors"
    )


def load_model(name: str | None = None, weights: str | Path | None = None,
               manifest: Manifest | None = None) -> LoadedModel:
    """Build the named model (default: the manifest's default) with its trained weights, in eval mode.

    A checkpoint's own arch+config metadata wins over the manifest, so a file written by
    `deblur train` loads with `weights` alone.
    """
    manifest = manifest or load_manifest()
    entry = manifest.entry(name or manifest.default_model)
    path = resolve_weights(entry, weights)
    state, metadata = read_checkpoint(path)
    arch, config = checkpoint_arch(metadata, path)
    if arch is None:
        arch, config = entry.arch, entry.config
    spec = get_arch(arch)
    network = build_network(arch, config)
    missing, unexpected = _key_mismatch(network.state_dict(), state)
    if missing or unexpected:
        raise ModelError(
            f"'{path}' does not fit {arch} {json.dumps(config)}: "
            f"{len(missing)} missing and {len(unexpected)} unexpected tensors "
            f"(e.g. {(missing or unexpected)[0]}); is it a checkpoint of another model?"
        )
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:  # shapes differ: another width or block count
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(f"'{path}' does not fit {arch} {json.dumps(config)}: {first}") from None
    network.eval().requires_grad_(False)
    return LoadedModel(name=entry.name, spec=spec, config={**spec.default_config, **config},
                       network=network, source=str(path))


def _key_mismatch(expected: dict, given: dict) -> tuple[list, list]:
    return sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
