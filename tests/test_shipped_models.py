"""The checkpoints that ship in the package: listed truthfully, loadable offline, and working out of the box."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deblur.checksums import sha256_file
from deblur.cli.app import app
from deblur.imageio import read_photo
from deblur.manifest import load_manifest
from deblur.metrics import psnr
from deblur.training import kernels
from deblur.weights import load_model

MANIFEST = load_manifest()
BUNDLED = [name for name, entry in MANIFEST.models.items() if entry.bundled]


def test_the_default_model_ships_in_the_package_with_its_reblurring_module():
    assert MANIFEST.default_model in BUNDLED
    assert load_model(MANIFEST.default_model, offline=True).reblur is not None, "adapt and score need it"


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_checkpoint_matches_its_manifest_entry(name):
    entry = MANIFEST.entry(name)
    loaded = load_model(name, offline=True)
    assert loaded.verification == "sha256 from the manifest"
    path = Path(loaded.source)
    spec = entry.files["weights"]
    assert path.stat().st_size == spec.size and sha256_file(path) == spec.sha256
    assert loaded.spec.name == entry.arch
    assert entry.licence and entry.training.get("phases"), "say how it was trained and under which terms"
    assert entry.training["reblur_module"] == (loaded.reblur is not None)
    assert spec.size <= 20_000_000


def test_the_default_model_restores_a_photo_offline(tmp_path):
    photo = tmp_path / "shaky.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(photo)
    result = CliRunner().invoke(app, [str(photo), "--offline", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"]["name"] == MANIFEST.default_model
    restored = read_photo(tmp_path / "shaky_deblur.png").pixels
    assert restored.shape == (40, 56, 3) and np.isfinite(restored).all()


def test_the_default_model_sharpens_synthetic_camera_shake():
    """Trained weights, not random ones: on seeded blur of a scene of coloured boxes the restored
    image is closer to the sharp one than the blurry input, for every seed."""
    rng = np.random.default_rng(1)
    size = 160 + kernels.MAX_KERNEL - 1
    scene = np.full((size, size, 3), 0.2, np.float32)
    for _ in range(30):
        left, top, width, height = rng.integers(0, size, 4)
        scene[top:top + height // 3, left:left + width // 3] = rng.random(3)
    sharp = torch.from_numpy(scene).permute(2, 0, 1)[None]
    quiet = kernels.BlurSettings(jpeg_share=0.0, noise_max=0.005, shot_max=0.0)
    network = load_model(MANIFEST.default_model, offline=True).network
    gains = []
    for seed in range(4):
        blurry, target = kernels.synthesize(sharp, torch.Generator().manual_seed(seed), quiet)
        with torch.no_grad():
            restored = network(blurry).clamp(0, 1)
        gains.append(psnr(restored, target).item() - psnr(blurry, target).item())
    assert min(gains) > 0.1, gains
