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
BUNDLED = [name for name, entry in MANIFEST.models.items() if entry.bundled and "weights" in entry.files]
PARTS = [(name, role) for name, entry in MANIFEST.models.items() if entry.bundled
         for role in entry.files if role != "weights"]  # trained parts of a model, e.g. shake's deconvolution


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


@pytest.mark.parametrize("name, role", PARTS)
def test_a_bundled_part_matches_its_manifest_entry_and_says_how_it_was_trained(name, role):
    from deblur.store import ModelStore

    entry = MANIFEST.entry(name)
    resolved = ModelStore().fetch(entry, offline=True)[role]
    assert resolved.origin == "bundled" and resolved.verification == "sha256 from the manifest"
    spec = entry.files[role]
    assert resolved.path.stat().st_size == spec.size and sha256_file(resolved.path) == spec.sha256
    assert entry.training[role]["phases"] and entry.training[role]["data"]
    assert spec.size <= 1_000_000


def test_the_shipped_learned_deconvolution_deconvolves_a_known_blur_offline():
    from deblur.deblurrer import Deblurrer

    if ("shake", "deconvolution") not in PARTS:
        pytest.skip("no learned deconvolution is shipped")
    sharp = np.kron(np.random.default_rng(1).random((12, 12, 1)), np.ones((6, 6, 3))).astype(np.float32)
    kernel = np.zeros((9, 9))
    kernel[4, 1:8] = 1 / 7
    blurry = kernels.blur_valid(torch.from_numpy(sharp).permute(2, 0, 1)[None], torch.from_numpy(kernel)[None].float())
    blurry = blurry[0].permute(1, 2, 0).numpy()
    engine = Deblurrer("shake", kernel=kernel, deconvolution="learned", offline=True)
    restored, report = engine.restore_pixels(blurry)
    assert report.details["shake"]["deconvolution"] == "learned"
    target = torch.from_numpy(sharp[4:-4, 4:-4]).permute(2, 0, 1)[None]
    def score(image):
        return psnr(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None][..., 6:-6, 6:-6],
                    target[..., 6:-6, 6:-6]).item()
    assert score(restored) > score(blurry) + 5
