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
