"""Tiny models and tiny images: tests check behaviour, not quality."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deblur.archs.registry import build_network
from deblur.checkpoints import write_checkpoint

TINY = {"width": 4, "blocks": 1}


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A random-weight XYDeblur checkpoint carrying its own arch+config metadata."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    write_checkpoint(path, build_network("xydeblur", TINY).state_dict(), "xydeblur", TINY)
    return path


@pytest.fixture(scope="session")
def with_reblur(tmp_path_factory) -> Path:
    """A random tiny XYDeblur checkpoint carrying a reblurring module (for adapt and score)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("reblur") / "tiny_reblur.safetensors"
    reblur_config = {"width": 4, "blocks": 1, "kernel": 5}
    write_checkpoint(path, build_network("xydeblur", TINY).state_dict(), "xydeblur", TINY,
                     reblur=(build_network("reblur", reblur_config).state_dict(), reblur_config))
    return path


def random_rgb(height=24, width=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """shots/a.jpg, shots/b.png, shots/sub/c.jpg and a text file."""
    root = tmp_path / "shots"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(random_rgb(seed=1)).save(root / "a.jpg")
    Image.fromarray(random_rgb(seed=2)).save(root / "b.png")
    Image.fromarray(random_rgb(seed=3)).save(root / "sub" / "c.jpg")
    (root / "notes.txt").write_text("not a photo")
    return root


COMMIT = "c0ffee" + "0" * 34
NEWER_COMMIT = "beef" + "1" * 36


@pytest.fixture(autouse=True)
def isolated_model_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache, or sees their offline/endpoint settings."""
    monkeypatch.setenv("DEBLUR_CACHE_DIR", str(tmp_path / "deblur-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for name in ("DEBLUR_OFFLINE", "HF_HUB_OFFLINE", "DEBLUR_MANIFEST", "DEBLUR_HF_ENDPOINT",
                 "DEBLUR_MODEL", "DEBLUR_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def retry_sleeps(monkeypatch) -> list:
    """huggingface_hub sleeps between retries; tests record those sleeps instead of waiting."""
    import time

    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    return sleeps


@pytest.fixture
def published(tmp_path, monkeypatch, tiny_weights, retry_sleeps):
    """A tiny model published on a local fake hub and listed in a manifest that DEBLUR_MANIFEST selects.

    Models: `tiny` (the default, hub repo deblur-test/tiny pinned to COMMIT) and `local-only` (no
    source: it can only be imported).
    """
    import hashlib
    import json
    from types import SimpleNamespace

    from fakehub import FakeHub

    data = tiny_weights.read_bytes()
    hub = FakeHub()
    hub.add("deblur-test/tiny", "tiny.safetensors", data, COMMIT, branch=None)
    # main moved on since the manifest was pinned: a pinned model must not follow it.
    hub.add("deblur-test/tiny", "tiny.safetensors", data[:-8] + b"newer...", NEWER_COMMIT, branch="main")
    spec = {"filename": "tiny.safetensors", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest = {
        "schema": 1,
        "default_model": "tiny",
        "models": {
            "tiny": {"arch": "xydeblur", "config": TINY, "files": {"weights": spec},
                     "sources": {"hub": {"repo_id": "deblur-test/tiny", "revision": COMMIT}},
                     "licence": "test-only", "description": "a tiny test model"},
            "local-only": {"arch": "xydeblur", "config": TINY,
                           "files": {"weights": {**spec, "filename": "local.safetensors"}}},
        },
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    monkeypatch.setenv("DEBLUR_MANIFEST", str(path))
    monkeypatch.setenv("DEBLUR_HF_ENDPOINT", hub.url)
    yield SimpleNamespace(hub=hub, data=data, sha256=spec["sha256"], manifest=path,
                          cache=tmp_path / "deblur-cache", sleeps=retry_sleeps)
    hub.close()


def write_bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A small PNG whose header declares a huge image (a decompression bomb); its data is a stub."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))
    return path
