"""`deblur score`: the width of a photo's strongest edges, measured above its noise and JPEG artefacts."""

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import deblur
from deblur.cli.app import app
from deblur.errors import InputError
from deblur.scoring import blur_score, score_crops

runner = CliRunner()


def pink_noise_scene(seed: int, size: int = 200) -> np.ndarray:
    """A colour image with the 1/f spectrum of natural photos (no data set needed)."""
    rng = np.random.default_rng(seed)
    radius = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None] ** 2)
    amplitude = 1 / np.maximum(radius, 1 / size)
    channels = [np.real(np.fft.ifft2(amplitude * np.exp(2j * np.pi * rng.random((size, size))))) for _ in range(3)]
    image = np.stack(channels, -1)
    return ((image - image.min()) / (image.max() - image.min())).astype(np.float32)


def shapes_scene(seed: int, size: int = 240) -> np.ndarray:
    """Flat shapes with hard edges on a gray ground: what edges in photos look like."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 0.5, np.float32)
    for _ in range(25):
        colour = rng.random(3).tolist()
        x, y = (int(v) for v in rng.integers(0, size, 2))
        if rng.random() < 0.5:
            cv2.circle(image, (x, y), int(rng.integers(8, 40)), colour, -1)
        else:
            cv2.rectangle(image, (x, y), (x + int(rng.integers(10, 60)), y + int(rng.integers(10, 60))), colour, -1)
    return image


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer)).astype(np.float32) / 255


def test_crops_cover_big_photos_on_the_jpeg_grid_and_take_small_ones_whole():
    crops = score_crops(np.zeros((2000, 3000, 3), np.float32))
    assert len(crops) == 16 and all(c.shape == (256, 256) for c in crops)
    assert [c.shape for c in score_crops(np.zeros((100, 80, 1), np.float32))] == [(100, 80)]
    assert len(score_crops(np.zeros((500, 500, 3), np.float32))) == 4  # two crops a side cover 500 px


@pytest.mark.parametrize("scene", [shapes_scene, pink_noise_scene])
def test_more_blur_scores_higher(scene):
    for seed in range(3):
        image = scene(seed)
        scores = [blur_score(image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), sigma))
                  for sigma in (0, 1.0, 2.0, 4.0)]
        assert scores == sorted(scores) and scores[-1] > 2 * scores[0]
        shaken = cv2.filter2D(image, -1, np.full((1, 15), 1 / 15, np.float32))  # a 15 px horizontal shake
        assert blur_score(shaken) > scores[1]


def test_noise_and_jpeg_never_pass_for_sharpness_and_blur_shows_through_noise():
    rng = np.random.default_rng(0)
    for seed in range(4):
        sharp = shapes_scene(seed)
        noisy = np.clip(sharp + rng.normal(0, 15 / 255, sharp.shape), 0, 1).astype(np.float32)
        blurred = cv2.GaussianBlur(sharp, (0, 0), 1.5)
        noisy_blurred = np.clip(blurred + rng.normal(0, 15 / 255, sharp.shape), 0, 1).astype(np.float32)
        assert blur_score(noisy) >= blur_score(sharp)
        assert blur_score(jpeg(sharp, 30)) >= blur_score(sharp)
        assert blur_score(noisy_blurred) > blur_score(noisy)


def test_a_photo_without_edges_is_an_input_error():
    with pytest.raises(InputError, match="no edges strong enough"):
        blur_score(np.full((64, 64, 3), 0.4, np.float32))


def test_the_python_api_scores_any_image_kind():
    image = shapes_scene(1)
    as_bytes = (image * 255 + 0.5).astype(np.uint8)
    assert deblur.score(as_bytes) == pytest.approx(blur_score(as_bytes.astype(np.float32) / 255))
    assert deblur.score(Image.fromarray(as_bytes)) == deblur.score(as_bytes)


@pytest.fixture
def scored_photos(tmp_path):
    """Three versions of one photo: sharp, a little and very blurred."""
    sharp = shapes_scene(0)
    for name, sigma in (("sharp", 0), ("soft", 1.5), ("blurry", 4.0)):
        pixels = sharp if sigma == 0 else cv2.GaussianBlur(sharp, (0, 0), sigma)
        Image.fromarray((pixels * 255 + 0.5).astype(np.uint8)).save(tmp_path / f"{name}.png")
    return tmp_path


def test_photos_are_listed_sharpest_first(scored_photos):
    result = runner.invoke(app, ["score", str(scored_photos), "--json"])
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)["scores"]
    assert [Path(s["path"]).stem for s in scores] == ["sharp", "soft", "blurry"]
    table = runner.invoke(app, ["score", str(scored_photos)]).stdout
    assert len(table.strip().splitlines()) == 3


def test_keep_sharpest_and_threshold_print_only_paths(scored_photos):
    args = ["score", str(scored_photos)]
    everything = json.loads(runner.invoke(app, [*args, "--json"]).stdout)["scores"]
    best = runner.invoke(app, [*args, "--keep-sharpest", "2"])
    assert best.exit_code == 0 and best.stdout.split() == [s["path"] for s in everything[:2]]
    cut = everything[0]["score"]
    kept = json.loads(runner.invoke(app, [*args, "--threshold", str(cut), "--json"]).stdout)["scores"]
    assert [s["keep"] for s in kept] == [True, False, False]


def test_unreadable_and_flat_photos_are_reported_and_the_rest_scored(scored_photos):
    (scored_photos / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(scored_photos / "flat.png")
    result = runner.invoke(app, ["score", str(scored_photos), "--json"])
    assert result.exit_code == 1 and "broken.png" in result.stderr
    assert "flat.png: no edges strong enough" in result.stderr
    assert len(json.loads(result.stdout)["scores"]) == 3


def test_a_decompression_bomb_is_one_failed_line_and_the_rest_are_scored(scored_photos):
    from conftest import write_bomb_png

    write_bomb_png(scored_photos / "bomb.png")
    result = runner.invoke(app, ["score", str(scored_photos), "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and len(report["scores"]) == 3
    assert [Path(f["path"]).name for f in report["failed"]] == ["bomb.png"]
    assert "over the limit" in report["failed"][0]["error"] and "Traceback" not in result.output
