import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from deblur.errors import InputError, OutputError
from deblur.imageio import ORIENTATION_TAG, apply_orientation, quantize, read_photo, side_by_side, write_photo

from conftest import random_rgb

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with(orientation=1, model="TestCam 3000"):
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    exif[0x0110] = model  # camera model
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    data = random_rgb(6, 4)
    Image.fromarray(data).save(tmp_path / "o.png", exif=exif_with(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(apply_orientation(data, orientation), expected)


def test_rotated_jpeg_is_read_upright_and_written_with_orientation_reset(tmp_path):
    Image.fromarray(random_rgb(40, 60)).save(tmp_path / "p.jpg", exif=exif_with(6), icc_profile=SRGB)
    photo = read_photo(tmp_path / "p.jpg")
    assert (photo.height, photo.width) == (60, 40)
    write_photo(photo, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.size == (40, 60)
        assert out.getexif()[ORIENTATION_TAG] == 1
        assert out.getexif()[0x0110] == "TestCam 3000"
        assert out.info["icc_profile"] == SRGB


@pytest.mark.parametrize("ext", [".png", ".webp", ".tif"])
def test_exif_and_icc_survive_other_formats(tmp_path, ext):
    Image.fromarray(random_rgb()).save(tmp_path / f"p{ext}", exif=exif_with(1), icc_profile=SRGB)
    write_photo(read_photo(tmp_path / f"p{ext}"), tmp_path / f"out{ext}")
    with Image.open(tmp_path / f"out{ext}") as out:
        assert out.getexif()[0x0110] == "TestCam 3000"
        assert out.info["icc_profile"] == SRGB


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_rgb_round_trips_exactly(tmp_path, ext):
    data = np.random.default_rng(0).integers(0, 65536, (10, 14, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / f"p{ext}"), data[:, :, ::-1])
    photo = read_photo(tmp_path / f"p{ext}")
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(quantize(photo.pixels, 16), data)
    write_photo(photo, tmp_path / f"out{ext}")
    written = cv2.imread(str(tmp_path / f"out{ext}"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written[:, :, ::-1], data)


def test_16bit_png_keeps_exif_and_icc(tmp_path):
    data = np.random.default_rng(0).integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "p.png"), data)
    photo = read_photo(tmp_path / "p.png")
    photo.exif, photo.icc = exif_with(1), SRGB
    write_photo(photo, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.info["icc_profile"] == SRGB
        assert out.getexif()[0x0110] == "TestCam 3000"
    assert cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


@pytest.mark.parametrize("bits", [8, 16])
def test_alpha_is_passed_through_untouched(tmp_path, bits):
    rng = np.random.default_rng(0)
    if bits == 8:
        data = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
        Image.fromarray(data, "RGBA").save(tmp_path / "p.png")
    else:
        data = rng.integers(0, 65536, (9, 11, 4), dtype=np.uint16)
        cv2.imwrite(str(tmp_path / "p.png"), data[:, :, [2, 1, 0, 3]])
    photo = read_photo(tmp_path / "p.png")
    photo.pixels = 1.0 - photo.pixels  # the colour changes; the alpha must not
    write_photo(photo, tmp_path / "out.png")
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(written[:, :, 3], data[:, :, 3])


def test_grayscale_stays_grayscale(tmp_path):
    Image.fromarray(random_rgb()[:, :, 0], "L").save(tmp_path / "g.png")
    photo = read_photo(tmp_path / "g.png")
    assert photo.is_gray
    write_photo(photo, tmp_path / "out.png")
    assert Image.open(tmp_path / "out.png").mode == "L"


def test_8bit_output_is_rounded_not_truncated():
    pixels = np.array([[[100.6 / 255, 100.4 / 255, 254.5001 / 255]]], np.float32)
    np.testing.assert_array_equal(quantize(pixels, 8), [[[101, 100, 255]]])


def test_png_round_trip_is_lossless(tmp_path):
    data = random_rgb()
    Image.fromarray(data).save(tmp_path / "p.png")
    write_photo(read_photo(tmp_path / "p.png"), tmp_path / "out.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), data)


def test_damaged_and_non_image_files_give_one_clear_error(tmp_path):
    (tmp_path / "text.jpg").write_text("hello")
    Image.fromarray(random_rgb(64, 64)).save(tmp_path / "whole.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    for name in ("text.jpg", "cut.jpg", "missing.jpg"):
        with pytest.raises(InputError, match=name):
            read_photo(tmp_path / name)


def test_jpeg_cannot_take_alpha(tmp_path):
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(tmp_path / "p.png")
    with pytest.raises(OutputError, match="alpha.*--output file name"):
        write_photo(read_photo(tmp_path / "p.png"), tmp_path / "out.jpg")


def test_side_by_side_puts_before_left_and_after_right():
    before = np.zeros((4, 5, 3), np.float32)
    after = np.ones((4, 5, 3), np.float32)
    from deblur.imageio import Photo

    joined = side_by_side(Photo(before, None, 16, "png"), Photo(after, None, 16, "png"), gap=2)
    assert joined.pixels.shape == (4, 12, 3) and joined.bit_depth == 8
    assert joined.pixels[:, :5].max() == 0 and joined.pixels[:, 7:].min() == 1


def test_a_decompression_bomb_is_refused_from_its_header_and_the_limit_can_be_raised(tmp_path, monkeypatch):
    import warnings

    from conftest import write_bomb_png

    bomb = write_bomb_png(tmp_path / "bomb.png", 30000, 30000)  # 900 MP declared in a file of a few hundred bytes
    assert bomb.stat().st_size < 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's raw DecompressionBombWarning must not reach the user
        with pytest.raises(InputError, match=r"bomb.png.*30000 x 30000 px \(900 MP\).*DEBLUR_MAX_PIXELS"):
            read_photo(bomb)
    monkeypatch.setenv("DEBLUR_MAX_PIXELS", "1000M")  # raised: the header passes, the stub data does not decode
    with pytest.raises(InputError, match="damaged or truncated"):
        read_photo(bomb)
    monkeypatch.setenv("DEBLUR_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="DEBLUR_MAX_PIXELS=lots is not a pixel count"):
        read_photo(bomb)
    monkeypatch.setenv("DEBLUR_MAX_PIXELS", "100")  # a small limit applies to ordinary photos too
    Image.fromarray(random_rgb(16, 16)).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="over the limit"):
        read_photo(tmp_path / "small.png")


def test_an_empty_file_is_called_empty(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="empty.jpg': the file is empty"):
        read_photo(tmp_path / "empty.jpg")
