import numpy as np
import pytest
import torch

from deblur.archs.xydeblur import XYDeblur
from deblur.devices import choose
from deblur.restorer import Restorer
from deblur.samplers import direct
from deblur.tiling import Blender, auto_tile_size, axis_spans, axis_weights, plan_tiles, span_size


@pytest.mark.parametrize("length, tile, overlap, multiple", [(100, 32, 8, 4), (257, 64, 16, 4), (64, 64, 8, 4), (33, 16, 4, 1)])
def test_spans_cover_the_axis_with_aligned_starts_and_enough_overlap(length, tile, overlap, multiple):
    size = span_size(length, tile, overlap, multiple)
    assert size <= tile + multiple - 1
    spans = axis_spans(length, size, overlap, multiple)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(start % multiple == 0 for start, _ in spans)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end - start >= overlap - multiple  # alignment may shave off less than one multiple


def test_blend_weights_sum_to_one_everywhere():
    height, width = 70, 90
    blender = Blender(height, width, 1)
    for tile, weight in plan_tiles(height, width, 32, 8, 4):
        blender.add(tile, np.ones((tile.y1 - tile.y0, tile.x1 - tile.x0, 1), np.float32), weight)
    np.testing.assert_allclose(blender.weight, 1.0, atol=1e-6)
    spans = axis_spans(90, span_size(90, 32, 8, 4), 8, 4)
    assert len(spans) > 2 and all(w.min() > 0 for w in axis_weights(spans))


def make_restorer(predict, tile, overlap=16, multiple=4, precision="fp32"):
    return Restorer(predict, choose("cpu", precision), multiple=multiple, tile=tile, overlap=overlap)


@pytest.fixture(scope="module")
def random_network():
    torch.manual_seed(0)
    return XYDeblur(width=4, blocks=1).eval()


def test_tiled_result_matches_untiled(random_network):
    pixels = np.random.default_rng(0).random((150, 190, 3), dtype=np.float32)
    whole, whole_report = make_restorer(direct(random_network), tile=256).restore(pixels)
    tiled, report = make_restorer(direct(random_network), tile=64, overlap=32).restore(pixels)
    assert whole_report.tiles == 1 and report.tiles > 6
    assert np.abs(tiled - whole).max() < 1e-3


def test_flat_image_has_no_seams(random_network):
    pixels = np.full((120, 160, 3), 0.4, np.float32)
    whole, _ = make_restorer(direct(random_network), tile=256).restore(pixels)
    tiled, _ = make_restorer(direct(random_network), tile=64, overlap=16).restore(pixels)
    assert np.abs(tiled - whole).max() < 1e-3


def test_any_size_is_padded_and_cropped_back(random_network):
    for shape in [(37, 51, 3), (5, 7, 3), (33, 1, 3)]:
        pixels = np.random.default_rng(1).random(shape, dtype=np.float32)
        out, _ = make_restorer(direct(random_network), tile=64).restore(pixels)
        assert out.shape == shape


def test_grayscale_runs_as_replicated_rgb(random_network):
    gray = np.random.default_rng(2).random((20, 24, 1), dtype=np.float32)
    out, _ = make_restorer(direct(random_network), tile=64).restore(gray)
    rgb, _ = make_restorer(direct(random_network), tile=64).restore(np.repeat(gray, 3, axis=2))
    assert out.shape == gray.shape
    np.testing.assert_allclose(out[:, :, 0], rgb.mean(axis=2), atol=1e-6)


def test_out_of_memory_halves_the_tile_and_retries():
    seen = []

    def predict(x, origin=(0, 0)):
        seen.append(x.shape[-1])
        if max(x.shape[-2:]) > 64:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return x * 0.5

    pixels = np.full((200, 200, 3), 0.8, np.float32)
    restorer = make_restorer(predict, tile=256, multiple=1)
    out, report = restorer.restore(pixels)
    assert report.tile == 64 and seen[0] == 200
    assert any("out of memory" in w for w in report.warnings)
    np.testing.assert_allclose(out, 0.4, atol=1e-6)
    # the next photo starts at the size that worked, without failing first
    _, next_report = restorer.restore(pixels)
    assert next_report.tile == 64 and not next_report.warnings


def test_out_of_memory_at_the_smallest_tile_is_a_clear_error():
    def predict(x, origin=(0, 0)):
        raise torch.OutOfMemoryError("out of memory")

    from deblur.errors import DeblurError

    with pytest.raises(DeblurError, match="even with 64 px tiles"):
        make_restorer(predict, tile=128, multiple=1).restore(np.zeros((100, 100, 3), np.float32))


def test_non_finite_low_precision_tile_is_recomputed_in_fp32():
    def predict(x, origin=(0, 0)):
        if torch.is_autocast_enabled("cpu"):
            return x * float("nan")
        return x

    pixels = np.full((16, 16, 3), 0.25, np.float32)
    out, report = make_restorer(predict, tile=64, multiple=1, precision="bf16").restore(pixels)
    np.testing.assert_allclose(out, 0.25)
    assert any("fp32" in w for w in report.warnings)


def test_auto_tile_size_follows_free_memory():
    small = auto_tile_size(free_bytes=1 << 30, bytes_per_pixel=3072, multiple=4, on_gpu=True)
    large = auto_tile_size(free_bytes=16 << 30, bytes_per_pixel=3072, multiple=4, on_gpu=True)
    assert small % 4 == 0 and 64 <= small < large <= 2048
    assert auto_tile_size(64 << 30, 3072, 4, on_gpu=False) == 384


def test_a_tile_not_finite_even_in_fp32_fails_the_photo():
    from deblur.errors import DeblurError

    def predict(x, origin=(0, 0)):
        return x * float("nan")

    pixels = np.full((16, 16, 3), 0.25, np.float32)
    for precision in ("bf16", "fp32"):
        with pytest.raises(DeblurError, match="NaN or infinite values .* nothing was written"):
            make_restorer(predict, tile=64, multiple=1, precision=precision).restore(pixels)
