"""Levin et al.'s shift-aligned scoring: sub-pixel shifts are found, and whole-pixel ones still are."""

import torch
import torch.nn.functional as F

from deblur.metrics import psnr, psnr_aligned, shifted


def _smooth_image(size=64, seed=0):
    """Detail at 8 px and coarser: bilinear resampling of it is nearly exact, so the true shift is the best."""
    coarse = torch.rand(1, 1, size // 8, size // 8, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)


def _translate(image, dy, dx):
    """The image sampled (dy, dx) px further on (bilinear, border pixels repeated)."""
    height, width = image.shape[-2:]
    ys = (torch.arange(height) + dy) / (height - 1) * 2 - 1
    xs = (torch.arange(width) + dx) / (width - 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)[None].float()
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def test_a_quarter_pixel_shift_is_undone_and_whole_pixels_score_it_lower():
    sharp = _smooth_image()
    moved = _translate(sharp, -1.25, 2.5)  # the result sits 1.25 px lower and 2.5 px to the left
    subpixel, (best,) = psnr_aligned(moved, sharp, border=8)
    whole, (whole_best,) = psnr_aligned(moved, sharp, border=8, step=1)
    assert best == (1.25, -2.5)
    assert subpixel.item() > 45
    assert whole.item() < subpixel.item() - 10
    assert whole_best in [(1, -2), (1, -3), (2, -2), (2, -3)]


def test_shifted_window_matches_the_scored_one():
    image = _smooth_image(seed=1)
    window = shifted(image, (0.5, -0.25), border=8)
    assert window.shape[-2:] == (48, 48)
    expected = _translate(image, 0.5, -0.25)[..., 8:-8, 8:-8]
    assert torch.allclose(window, expected, atol=1e-5)
    assert torch.equal(shifted(image, (0, 0), border=8), image[..., 8:-8, 8:-8])


def test_an_unshifted_batch_scores_as_plain_psnr_per_image():
    sharp = torch.cat([_smooth_image(seed=2), _smooth_image(seed=3)])
    noisy = (sharp + 0.01 * torch.randn(sharp.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
    values, shifts = psnr_aligned(noisy, sharp, shift=0, border=8)
    assert shifts == [(0.0, 0.0), (0.0, 0.0)]
    assert torch.allclose(values, psnr(noisy[..., 8:-8, 8:-8], sharp[..., 8:-8, 8:-8]), atol=1e-4)
