"""Turning a model name (or a checkpoint) into a network ready for inference.

Resolution order: `--weights FILE` or `--weights hf://ORG/REPO/FILE[@REVISION]` > the manifest
model's checkpoint bundled in the package > in the cache > downloaded from its hub (see store.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from deblur import hub
from deblur.archs.registry import ArchSpec, build_network, get_arch
from deblur.checkpoints import checkpoint_arch, read_checkpoint, split_reblur
from deblur.errors import ModelError
from deblur.manifest import Manifest, load_manifest
from deblur.store import NOT_CHECKED, ModelStore, ResolvedFile


@dataclass
class LoadedModel:
    """A network ready for inference and what the pipeline needs to know about it."""

    name: str
    spec: ArchSpec
    config: dict
    network: object  # torch.nn.Module
    source: str  # the file the weights came from
    verification: str = ""  # how the file was checked (store.VERIFIED, ...)
    inference: dict = field(default_factory=dict)  # the manifest's defaults: precision, overlap
    reblur: object = None  # the reblurring module M_R trained with it (adapt and score need it), or None
    reblur_config: dict | None = None

    @property
    def bytes_per_pixel(self) -> float:
        return self.spec.bytes_per_pixel(self.config)

    def precision_for(self, requested: str) -> str:
        """`auto` becomes the manifest's choice (fp32 where half precision hurts); anything else stays."""
        if requested.strip().lower() == "auto":
            return self.inference.get("precision", "auto")
        return requested

    def overlap_for(self, requested: int | None, fallback: int) -> int:
        return requested if requested is not None else self.inference.get("overlap", fallback)


def resolve_weights(manifest: Manifest, name: str | None, weights: str | Path | None = None,
                    offline: bool = False, progress=None, store: ModelStore | None = None) -> ResolvedFile:
    """The checkpoint file to load, verified where a checksum is known; ModelError says how to get one."""
    store = store or ModelStore()
    offline = hub.offline_requested(offline)
    if weights is not None and hub.is_reference(str(weights)):
        return store.fetch_reference(hub.HubReference.parse(str(weights)), manifest, offline, progress)
    if weights is not None:
        return ResolvedFile(Path(weights).expanduser(), "file", NOT_CHECKED)
    entry = manifest.entry(name or manifest.default_model)
    return store.fetch(entry, offline, progress)["weights"]


def load_model(name: str | None = None, weights: str | Path | None = None, manifest: Manifest | None = None,
               offline: bool = False, progress=None, store: ModelStore | None = None) -> LoadedModel:
    """Build the named model (default: the manifest's default) with its trained weights, in eval mode.

    `weights` is a file or a `hf://` reference; `offline` forbids any network request; `progress`
    is called with (filename, bytes done, bytes total) while a file downloads. A checkpoint's own
    arch+config metadata wins over the manifest, so a file written by `deblur train` loads with
    `weights` alone.
    """
    manifest = manifest or load_manifest()
    entry = manifest.entry(name or manifest.default_model)
    spec = get_arch(entry.arch)
    if not spec.needs_weights:
        if weights is not None:
            raise ModelError(f"model '{entry.name}' has no weights; --weights is for the networks")
        return LoadedModel(name=entry.name, spec=spec, config={**spec.default_config, **entry.config},
                           network=build_network(entry.arch, entry.config), source="built in",
                           verification="no weights", inference=entry.inference)
    resolved = resolve_weights(manifest, entry.name, weights, offline, progress, store)
    path = resolved.path
    state, metadata = read_checkpoint(path)
    state, reblur_state, reblur_config = split_reblur(state, metadata, path)
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
    # a checkpoint of another architecture (--weights) is named by its architecture, not the entry
    return LoadedModel(name=entry.name if arch == entry.arch else arch, spec=spec, config={**spec.default_config, **config},
                       network=network, source=str(path), verification=resolved.verification,
                       inference=entry.inference, reblur=_reblur_module(reblur_state, reblur_config, path),
                       reblur_config=reblur_config)


def _reblur_module(state: dict | None, config: dict | None, path):
    if state is None:
        return None
    network = build_network("reblur", config or {})
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(f"the reblurring module in '{path}' does not fit its configuration: {first}") from None
    return network.eval().requires_grad_(False)


def _key_mismatch(expected: dict, given: dict) -> tuple[list, list]:
    return sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
