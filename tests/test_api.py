"""The Python API: `deblur.restore(image)` and `deblur.Deblurrer`, on every kind of image a script holds."""

import numpy as np
import pytest
import torch
from PIL import Image

import deblur
from deblur.errors import ModelError, OutputError, UsageError
from deblur.imageio import read_photo

from conftest import random_rgb


@pytest.fixture(scope="module")
def engine(with_reblur):
    return deblur.Deblurrer(weights=str(with_reblur), device="cpu", precision="fp32")


def test_numpy_images_come_back_as_numpy_of_the_same_shape_and_dtype(engine):
    rgb = random_rgb(24, 40, seed=3)
    out = engine.restore(rgb)
    assert isinstance(out, np.ndarray) and out.shape == rgb.shape and out.dtype == np.uint8
    expected, _ = engine.restore_pixels(rgb.astype(np.float32) / 255)
    np.testing.assert_array_equal(out, np.rint(expected * 255).astype(np.uint8))

    gray16 = (random_rgb(24, 40, seed=4)[..., 0].astype(np.uint16) * 257)
    assert engine.restore(gray16).shape == (24, 40) and engine.restore(gray16).dtype == np.uint16
    floats = rgb.astype(np.float32) / 255
    restored = engine.restore(floats)
    assert restored.dtype == np.float32 and 0 <= restored.min() and restored.max() <= 1
    np.testing.assert_allclose(restored, expected, atol=1e-6)


def test_alpha_passes_through_untouched(engine):
    rgba = np.concatenate([random_rgb(24, 32, seed=5), np.arange(24 * 32, dtype=np.uint8).reshape(24, 32, 1)], 2)
    out = engine.restore(rgba)
    assert out.shape == (24, 32, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])


def test_pil_images_come_back_as_pil_in_their_mode_with_their_metadata(engine):
    image = Image.fromarray(random_rgb(24, 32, seed=6))
    image.info["icc_profile"] = b"fake icc"
    out = engine.restore(image)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (32, 24)
    assert out.info["icc_profile"] == b"fake icc"
    np.testing.assert_array_equal(np.asarray(out), engine.restore(np.asarray(image)))
    assert engine.restore(image.convert("L")).mode == "L"
    assert engine.restore(image.convert("P")).mode == "RGB"  # a palette cannot hold the restored colours


def test_tensors_come_back_on_their_device_with_their_shape_and_dtype(engine):
    batch = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    out = engine.restore(batch)
    assert isinstance(out, torch.Tensor) and out.shape == batch.shape and out.dtype == torch.float32
    torch.testing.assert_close(out[1], engine.restore(batch[1]))
    as_bytes = (batch[0] * 255).round().to(torch.uint8)
    restored = engine.restore(as_bytes)
    assert restored.dtype == torch.uint8 and restored.shape == (3, 24, 32)


def test_a_path_gives_a_pil_image_with_its_exif_or_writes_the_output(engine, tmp_path):
    source = tmp_path / "shot.jpg"
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    Image.fromarray(random_rgb(24, 32, seed=7)).save(source, exif=exif.tobytes())
    before = source.read_bytes()
    out = engine.restore(source)
    assert isinstance(out, Image.Image) and out.size == (32, 24)
    assert b"TestCam" in out.info["exif"]

    written = engine.restore(str(source), output=tmp_path / "shot_deblur.jpg")
    assert written == tmp_path / "shot_deblur.jpg" and b"TestCam" in read_photo(written).exif
    assert source.read_bytes() == before  # the input is never touched
    with pytest.raises(OutputError, match="already exists"):
        engine.restore(source, output=written)


def test_one_call_restore_uses_the_default_model_options(with_reblur, tmp_path):
    image = random_rgb(24, 32, seed=8)
    out = deblur.restore(image, weights=str(with_reblur), device="cpu", precision="fp32")
    assert out.shape == image.shape
    np.testing.assert_array_equal(out, deblur.Deblurrer(weights=str(with_reblur), device="cpu",
                                                         precision="fp32").restore(image))


def test_adapt_and_score_work_from_python(engine):
    image = random_rgb(40, 48, seed=9)
    adapted = engine.adapt(image, iters=2, crop_size=32, crops=2)
    assert adapted.shape == image.shape and adapted.dtype == np.uint8
    square = np.zeros((128, 128, 3), np.uint8)
    square[30:94, 30:94] = 255
    score = engine.score(square)
    assert isinstance(score, float) and score > 0 and score == deblur.score(Image.fromarray(square))
    # the weights are back after adapting: a plain restore is unchanged
    np.testing.assert_array_equal(engine.restore(image), deblur.Deblurrer(weights=engine.model.source,
                                                                          device="cpu", precision="fp32").restore(image))


def test_options_are_checked_with_the_cli_messages(with_reblur, tiny_weights):
    weights = str(with_reblur)
    with pytest.raises(UsageError, match="--samples needs --sampler diffusion"):
        deblur.Deblurrer(weights=weights, samples=4)
    with pytest.raises(UsageError, match="--steps must be at least 0"):
        deblur.Deblurrer(weights=weights, steps=-1)
    with pytest.raises(UsageError, match="--tile must be at least 16"):
        deblur.Deblurrer(weights=weights, tile=8)
    with pytest.raises(UsageError, match="restore takes a path, a PIL image"):
        deblur.Deblurrer(weights=weights, device="cpu").restore([[1, 2], [3, 4]])
    with pytest.raises(UsageError, match="H x W x C with C = 1, 3 or 4"):
        deblur.Deblurrer(weights=weights, device="cpu").restore(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ModelError, match="no reblurring module, which adapt needs"):
        deblur.Deblurrer(weights=str(tiny_weights), device="cpu").adapt(random_rgb(), iters=1)


def test_the_shake_model_runs_from_python_with_a_known_kernel(tmp_path):
    kernel = np.zeros((5, 5), np.float32)
    kernel[2, :] = 0.2
    image = random_rgb(48, 64, seed=10)
    out = deblur.restore(image, model="shake", kernel=kernel, device="cpu")
    assert out.shape == image.shape and out.dtype == np.uint8
    with pytest.raises(UsageError, match="--kernel-size 4: the size must be odd"):
        deblur.Deblurrer("shake", kernel_size=4)
