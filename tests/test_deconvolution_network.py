"""The learned non-blind deconvolution: its parts, its training run, and its use by the shake model."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from deblur.cli.app import app
from deblur.shake.deconvolution_network import DeconvolutionNetwork, _OddPiecewiseLinear, deconvolve_learned
from deblur.shake.deconvolve import deconvolve, pad_for_fft

from conftest import random_rgb

runner = CliRunner()
TINY = ["--config", "stages=2", "--config", "filters=4", "--crop", "32", "-b", "2", "--log-every", "1"]


def deblur(*args):
    return runner.invoke(app, [str(a) for a in args])


def _line_kernel(size=7):
    kernel = np.zeros((size, size))
    kernel[size // 2, 1:-1] = 1
    kernel[size // 2 - 1, -2] = 1
    return kernel / kernel.sum()


def _scene(size=48, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.random((size // 6, size // 6, 1)).astype(np.float32)
    return np.kron(coarse, np.ones((6, 6, 1), np.float32))  # flat patches with sharp edges


def _blurred(scene, kernel, sigma=0.005, seed=1):
    import cv2

    blurred = cv2.filter2D(scene[..., 0], -1, kernel[::-1, ::-1].astype(np.float32), borderType=cv2.BORDER_REFLECT)
    noisy = blurred + sigma * np.random.default_rng(seed).standard_normal(blurred.shape)
    return noisy[..., None].astype(np.float32)


def test_the_shrinkage_gradients_are_those_of_the_function():
    torch.manual_seed(0)
    responses = (torch.randn(2, 3, 5, 5, dtype=torch.float64) * 0.4).requires_grad_()
    table = torch.rand(2, 3, 9, dtype=torch.float64).cumsum(-1).mul(0.1).requires_grad_()  # per plane and filter
    assert torch.autograd.gradcheck(lambda v, t: _OddPiecewiseLinear.apply(v, t, 0.6), (responses, table))


def test_an_untrained_network_deconvolves_as_the_hyper_laplacian():
    kernel, scene = _line_kernel(), _scene()
    blurry = _blurred(scene, kernel)
    classical, learned = deconvolve(blurry, kernel), deconvolve_learned(blurry, kernel, DeconvolutionNetwork())

    def score(image):
        return -10 * np.log10(np.mean((np.clip(image, 0, 1) - scene)[8:-8, 8:-8] ** 2))

    assert score(classical) > score(blurry) + 3  # a real deconvolution, not a copy of the input
    assert abs(score(learned) - score(classical)) < 0.5
    assert np.abs(learned - classical).mean() < 0.01


def test_a_big_photo_in_bands_of_rows_is_the_whole_plane_at_once():
    torch.manual_seed(0)
    network = DeconvolutionNetwork(stages=2, filters=4)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    kernel = torch.from_numpy(_line_kernel()).float()
    plane, _, _ = pad_for_fft(torch.from_numpy(_blurred(_scene(), _line_kernel())[..., 0]), kernel)
    sigma = torch.tensor([0.01])
    with torch.no_grad():
        whole = network(plane[None, None], kernel[None], sigma)
        banded = network(plane[None, None], kernel[None], sigma, rows=7)
    torch.testing.assert_close(banded, whole, rtol=0, atol=1e-5)


@pytest.fixture
def sharp_folder(tmp_path):
    folder = tmp_path / "sharp"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(random_rgb(80, 90, seed=20 + i)).save(folder / f"s{i}.png")
    return folder


def test_deblur_train_trains_resumes_exactly_and_the_shake_model_uses_the_result(sharp_folder, tmp_path):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    result = deblur("train", "--model", "deconvolution", "--sharp", sharp_folder, "-o", straight, "--steps", 4,
                    "--val-every", 2, *TINY, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["step"] == 4
    records = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in records if r["kind"] == "val"] == [0, 2, 4]
    assert deblur("train", "--model", "deconvolution", "--sharp", sharp_folder, "-o", halves, "--steps", 2,
                  "--val-every", 2, *TINY).exit_code == 0
    resumed = deblur("train", "--resume", halves, "--steps", 4)
    assert resumed.exit_code == 0, resumed.stderr
    a, b = load_file(straight / "model.safetensors"), load_file(halves / "model.safetensors")
    for name, tensor in a.items():
        torch.testing.assert_close(b[name], tensor, rtol=0, atol=1e-6)

    photo = tmp_path / "photo.png"
    Image.fromarray((np.repeat(_blurred(_scene(64), _line_kernel()), 3, 2).clip(0, 1) * 255).astype(np.uint8)).save(photo)
    np.save(tmp_path / "k.npy", _line_kernel())
    out = deblur(photo, "--kernel", tmp_path / "k.npy", "--deconvolution", straight / "model.safetensors",
                 "-o", tmp_path / "out.png", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["processed"][0]["shake"]["deconvolution"] == "learned"
    assert (tmp_path / "out.png").exists()


def test_wrong_data_and_wrong_checkpoints_are_named(sharp_folder, tmp_path, tiny_weights):
    pairs = deblur("train", tmp_path, "--model", "deconvolution", "--sharp", sharp_folder, "-o", tmp_path / "r")
    assert pairs.exit_code != 0 and "--model deconvolution learns from sharp photos" in pairs.stderr
    photo = tmp_path / "photo.png"
    Image.fromarray(random_rgb(40, 40)).save(photo)
    np.save(tmp_path / "k.npy", _line_kernel())
    network = deblur(photo, "--kernel", tmp_path / "k.npy", "--deconvolution", tiny_weights, "-o", tmp_path / "o.png")
    assert network.exit_code != 0 and "not a learned deconvolution" in network.stderr
    named = deblur(photo, "--kernel", tmp_path / "k.npy", "--deconvolution", "wiener", "-o", tmp_path / "o.png")
    assert named.exit_code != 0 and "use hyper-laplacian, learned, or a checkpoint" in named.stderr
    network_model = deblur(photo, "--model", "xydeblur", "--deconvolution", "learned", "-o", tmp_path / "o.png")
    assert network_model.exit_code != 0 and "need --model shake" in network_model.stderr
