"""Checkpoint files: safetensors with the architecture and configuration in their metadata.

A checkpoint written here loads with `--weights FILE` alone. Pickle files (.pth, .pt, .ckpt)
are refused: unpickling runs arbitrary code from whoever made the file.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from deblur.errors import ModelError

FORMAT_TAG = "deblur-checkpoint/1"
REBLUR_PREFIX = "reblur."  # the reblurring module's tensors travel in the same file
PICKLE_SUFFIXES = {".pth", ".pt", ".ckpt", ".pkl", ".bin"}


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file starts with a little-endian u64 header size and a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < size <= os.path.getsize(path) - 8


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """Return (state_dict, metadata) of a safetensors checkpoint, or raise ModelError saying why not."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file '{path}' does not exist")
    if path.suffix.lower() in PICKLE_SUFFIXES or not _looks_like_safetensors(path):
        raise ModelError(
            f"'{path}' is not a safetensors file; deblur loads only .safetensors because pickle "
            "files (.pth/.pt) can run arbitrary code when loaded. Convert it where you trust it: "
            "safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"cannot load '{path}': the file is damaged ({exc})") from None
    broken = non_finite_tensors(state)
    if broken:
        raise ModelError(f"'{path}' holds weights that are not finite (NaN or infinity in {', '.join(broken[:3])}"
                         f"{' and more' if len(broken) > 3 else ''}): it would restore photos as black; "
                         "use an intact copy or retrain")
    return state, metadata


def non_finite_tensors(state: dict) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity (a diverged or damaged training run)."""
    import torch

    return sorted(name for name, tensor in state.items()
                  if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()))


def checkpoint_arch(metadata: dict, path) -> tuple[str | None, dict | None]:
    """The (arch, config) a checkpoint declares, or (None, None) for a bare state dict."""
    if "arch" not in metadata:
        return None, None
    try:
        config = json.loads(metadata.get("config", "{}"))
    except json.JSONDecodeError:
        raise ModelError(f"'{path}' has malformed 'config' metadata") from None
    return metadata["arch"], config


def split_reblur(state: dict, metadata: dict, path) -> tuple[dict, dict | None, dict | None]:
    """(deblurring tensors, reblurring-module tensors or None, its config or None)."""
    reblur = {k[len(REBLUR_PREFIX):]: v for k, v in state.items() if k.startswith(REBLUR_PREFIX)}
    if not reblur:
        return state, None, None
    try:
        config = json.loads(metadata.get("reblur_config", "{}"))
    except json.JSONDecodeError:
        raise ModelError(f"'{path}' has malformed 'reblur_config' metadata") from None
    return {k: v for k, v in state.items() if not k.startswith(REBLUR_PREFIX)}, reblur, config


def write_checkpoint(path: str | os.PathLike, state: dict, arch: str, config: dict,
                     extra: dict | None = None, reblur: tuple[dict, dict] | None = None) -> None:
    """Write tensors with their arch+config metadata, atomically; `reblur` = (state, config) of M_R."""
    from safetensors.torch import save

    from deblur.files import write_atomic

    metadata = {"format": FORMAT_TAG, "arch": arch, "config": json.dumps(config, sort_keys=True)}
    metadata.update({k: str(v) for k, v in (extra or {}).items()})
    tensors = dict(state)
    if reblur is not None:
        reblur_state, reblur_config = reblur
        tensors.update({REBLUR_PREFIX + k: v for k, v in reblur_state.items()})
        metadata["reblur_config"] = json.dumps(reblur_config, sort_keys=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_atomic(Path(path), _canonical_header(save(tensors, metadata=metadata)), overwrite=True)


def _canonical_header(blob: bytes) -> bytes:
    """The same tensors and metadata always give the same bytes (and sha256): safetensors writes its
    metadata in hash-map order, so the header is re-written with sorted keys. Offsets are unchanged."""
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.dumps(json.loads(blob[8:8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to a multiple of 8 bytes
    return struct.pack("<Q", len(header)) + header + blob[8 + size:]
