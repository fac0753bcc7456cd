"""The shake model: blind kernel estimation, deconvolution, guards, kernel files and the CLI."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from deblur.cli.app import app
from deblur.errors import UsageError
from deblur.imageio import read_photo
from deblur.shake.deconvolve import deconvolve
from deblur.shake.guards import kernel_similarity
from deblur.shake.kernel import estimate_kernel, fit_kernel
from deblur.shake.kernel_file import kernel_png, load_kernel
from deblur.shake.region import choose_region, parse_region
from deblur.shake.restorer import ShakeOptions, ShakeRestorer
from deblur.shake.search import kernel_extent, search_kernel

runner = CliRunner()


def scene(size: int = 224, seed: int = 0) -> np.ndarray:
    """A gray scene of random polygons, discs and strokes: edges in every direction, flat areas between."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 0.5, np.float32)
    for _ in range(40):
        value = float(rng.uniform(0.05, 0.95))
        kind = rng.integers(3)
        centre = tuple(int(c) for c in rng.integers(0, size, 2))
        if kind == 0:
            cv2.circle(image, centre, int(rng.integers(4, size // 6)), value, -1, cv2.LINE_AA)
        elif kind == 1:
            box = cv2.boxPoints((centre, tuple(float(s) for s in rng.integers(6, size // 4, 2)), float(rng.uniform(0, 180))))
            cv2.fillPoly(image, [box.astype(np.int32)], value, cv2.LINE_AA)
        else:
            end = tuple(int(c) for c in rng.integers(0, size, 2))
            cv2.line(image, centre, end, value, int(rng.integers(1, 4)), cv2.LINE_AA)
    return image


def line_kernel(length: int, angle: float, size: int) -> np.ndarray:
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.cos(np.radians(angle)) * length / 2, np.sin(np.radians(angle)) * length / 2
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    return kernel / kernel.sum()


def curve_kernel(size: int) -> np.ndarray:
    """A hand's shake: an arc with a hook, brighter where the hand lingered."""
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    t = np.linspace(0, 1, 60)
    xs = c - 6 + 12 * t
    ys = c - 4 + 9 * (t - 0.5) ** 2 * 4 - 3 * np.sin(6 * t)
    for x, y, w in zip(xs, ys, 1 + 2 * t):
        kernel[int(round(y)), int(round(x))] += w
    return kernel / kernel.sum()


def blur(image: np.ndarray, kernel: np.ndarray, noise: float = 0.003, seed: int = 0) -> np.ndarray:
    """True convolution (cv2 correlates, so the kernel is flipped), with a little sensor noise."""
    blurred = cv2.filter2D(image, -1, kernel[::-1, ::-1].copy(), borderType=cv2.BORDER_REFLECT)
    return (blurred + np.random.default_rng(seed).normal(0, noise, image.shape)).astype(np.float32)


def psnr(a, b, border=12):
    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return 10 * np.log10(1 / np.mean((np.clip(a, 0, 1) - b) ** 2))


KERNELS = {
    "line 11 px at 30 deg": line_kernel(11, 30, 17),
    "line 15 px at 100 deg": line_kernel(15, 100, 21),
    "curved shake": curve_kernel(21),
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_the_estimated_kernel_matches_the_true_one(name):
    true = KERNELS[name]
    sharp = scene(seed=1)
    estimate = estimate_kernel(blur(sharp, true), true.shape[0] + 6)
    assert kernel_similarity(estimate.kernel, true) >= 0.8, name


def test_the_kernel_fitted_to_a_known_sharp_image_is_the_true_one():
    sharp = scene(seed=11)
    true = KERNELS["curved shake"]
    assert kernel_similarity(fit_kernel(sharp, blur(sharp, true), true.shape[0] + 6), true) >= 0.95


def test_the_search_finds_the_kernel_and_its_size_unaided():
    true = KERNELS["curved shake"]
    found = search_kernel(blur(scene(seed=2), true, seed=2))
    assert kernel_similarity(found.kernel, true) >= 0.8
    assert found.size >= kernel_extent(true)


def test_deconvolution_with_the_true_kernel_beats_the_blurry_input_by_a_margin():
    sharp = scene(seed=3)
    true = KERNELS["line 15 px at 100 deg"]
    blurry = blur(sharp, true)
    restored = deconvolve(blurry[..., None], true)[..., 0]
    assert psnr(restored, sharp) > psnr(blurry, sharp) + 4


def test_deconvolution_keeps_the_shape_and_solves_each_colour_channel():
    sharp = np.stack([scene(96, seed=s) for s in (4, 5, 6)], axis=2)
    true = KERNELS["line 11 px at 30 deg"]
    blurry = np.stack([blur(sharp[..., c], true) for c in range(3)], axis=2)
    restored = deconvolve(blurry, true)
    assert restored.shape == blurry.shape and restored.dtype == np.float32
    for c in range(3):
        assert psnr(restored[..., c], sharp[..., c]) > psnr(blurry[..., c], sharp[..., c])


def test_a_guard_fires_on_a_photo_with_no_blur():
    sharp = scene(seed=7)[..., None]
    out, report = ShakeRestorer(ShakeOptions()).restore(sharp)
    assert report.details["shake"]["fallback"], report.details
    assert any("no camera shake found" in w for w in report.warnings)
    assert np.array_equal(out, sharp)  # no fallback network given: the photo is left as it was


def test_a_given_kernel_is_used_without_estimation_or_guards():
    sharp = scene(seed=8)
    true = KERNELS["curved shake"]
    out, report = ShakeRestorer(ShakeOptions(kernel=true)).restore(blur(sharp, true)[..., None])
    assert report.details["shake"]["kernel"]["source"] == "given"
    assert "fallback" not in report.details["shake"]
    assert psnr(out[..., 0], sharp) > psnr(blur(sharp, true), sharp) + 4


def test_the_region_avoids_clipped_highlights_and_prefers_edges():
    pixels = np.full((300, 600, 3), 0.5, np.float32)
    pixels[:, :300] = scene(300, seed=9)[..., None]  # edges on the left...
    pixels[100:140, 100:140] = 1.0  # ...with a blown highlight in them
    pixels[:, 300:] = np.stack([scene(300, seed=10)[:, :300]] * 3, axis=2) * 0.9 + 0.05
    region = choose_region(pixels, 200)
    assert region.x >= 140 or region.x + region.width <= 100 or region.y >= 140 or region.y + region.height <= 100
    assert (region.width, region.height) == (200, 200)


def test_region_text_is_checked():
    assert parse_region("10,20,300,200").as_text() == "10,20,300,200"
    for bad in ("10,20,300", "a,b,c,d", "-1,0,100,100", "0,0,10,10"):
        with pytest.raises(UsageError):
            parse_region(bad)
    with pytest.raises(UsageError, match="beyond"):
        parse_region("0,0,300,300", height=200, width=400)


def test_kernel_files_round_trip_and_bad_ones_are_refused(tmp_path):
    kernel = KERNELS["curved shake"]
    (tmp_path / "k.png").write_bytes(kernel_png(kernel))
    assert np.abs(load_kernel(tmp_path / "k.png") - kernel).max() < 1e-4
    np.save(tmp_path / "k.npy", kernel[:, :-2])  # even width: padded to an odd square, centred
    loaded = load_kernel(tmp_path / "k.npy")
    assert loaded.shape == (21, 21) and abs(loaded.sum() - 1) < 1e-9
    np.save(tmp_path / "neg.npy", -kernel)
    np.save(tmp_path / "cube.npy", np.ones((3, 3, 3)))
    for name, message in (("neg.npy", "non-negative"), ("cube.npy", "2-D"), ("missing.png", "no such file")):
        with pytest.raises(UsageError, match=message):
            load_kernel(tmp_path / name)


@pytest.fixture
def shaky_photo(tmp_path):
    sharp = np.stack([scene(160, seed=11)] * 3, axis=2)
    true = KERNELS["line 11 px at 30 deg"]
    blurry = np.stack([blur(sharp[..., c], true, seed=c) for c in range(3)], axis=2)
    path = tmp_path / "shaky.png"
    Image.fromarray((np.clip(blurry, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
    np.save(tmp_path / "psf.npy", true)
    return path, sharp, true


def test_cli_deconvolves_with_a_given_kernel_and_saves_it_and_the_comparison(shaky_photo):
    path, sharp, true = shaky_photo
    result = runner.invoke(app, [str(path), "--kernel", str(path.with_name("psf.npy")), "--save-kernel",
                                 "--compare", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["sampler"]["name"] == "shake"
    restored = read_photo(path.with_name("shaky_deblur.png")).pixels[..., 0]
    blurry = read_photo(path).pixels[..., 0]
    assert psnr(restored, sharp[..., 0]) > psnr(blurry, sharp[..., 0]) + 3
    saved = load_kernel(path.with_name("shaky_deblur_kernel.png"))
    assert np.abs(saved - true).max() < 1e-4
    compare = read_photo(path.with_name("shaky_deblur_compare.png")).pixels
    assert compare.shape[1] == 2 * 160 + 8
    inset = compare[:34, -34:]  # the kernel, enlarged to a fifth of the photo, framed in white
    assert inset[0].min() > 0.99 and inset[:, 0].min() > 0.99
    assert inset[1:-1, 1:-1].max() > 0.99 and np.median(inset[1:-1, 1:-1]) < 0.01


def test_cli_falls_back_to_the_network_when_no_shake_is_found(tmp_path):
    path = tmp_path / "sharp.png"
    Image.fromarray((np.stack([scene(160, seed=12)] * 3, axis=2) * 255).astype(np.uint8)).save(path)
    result = runner.invoke(app, [str(path), "--model", "shake", "--offline", "--json"])
    assert result.exit_code == 0, result.output
    processed = json.loads(result.stdout)["processed"][0]
    assert processed["shake"]["fallback"]
    assert any("restored with xydeblur instead" in w for w in processed["warnings"])


@pytest.mark.parametrize("args, message", [
    (["--kernel-size", "4"], "must be odd"),
    (["--model", "xydeblur", "--region", "0,0,64,64"], "need --model shake"),
    (["--model", "shake", "--steps", "5"], "shake model deconvolves"),
])
def test_cli_refuses_shake_options_that_cannot_work(shaky_photo, args, message):
    path, _, _ = shaky_photo
    result = runner.invoke(app, [str(path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_region_beyond_the_photo_fails_that_photo_only(shaky_photo):
    path, _, _ = shaky_photo
    result = runner.invoke(app, [str(path), "--region", "100,100,200,200"])
    assert result.exit_code == 1, result.output
    assert "beyond" in result.output
