"""Training blur made like a camera makes it: linear light, clipped highlights, sensor noise, rotating
shake, and real motion from high-speed video frames."""

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deblur.cli.app import app
from deblur.training import camera, kernels
from deblur.training.batches import BatchMaker
from deblur.training.camera_motion import camera_shake_blur
from deblur.training.data import MemoryBudget, load_sharp
from deblur.training.frames import clip_batch, load_clips
from deblur.training.session import DataSources, prepare_data
from deblur.training.synthesis import synthesize
from deblur.training.trainer import TrainConfig

from conftest import random_rgb

runner = CliRunner()
MARGIN = (kernels.MAX_KERNEL - 1) // 2


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_the_tone_curve_round_trips_and_averages_light_not_srgb_values():
    values = torch.linspace(0, 1, 101)
    torch.testing.assert_close(camera.linear_to_srgb(camera.srgb_to_linear(values)), values, atol=1e-5, rtol=0)
    # half the exposure on black, half on white: half the light, which sRGB shows at 0.735, not 0.5
    mixed = camera.linear_to_srgb(camera.srgb_to_linear(torch.tensor([0.0, 1.0])).mean())
    assert mixed.item() == pytest.approx(0.735, abs=0.002)


def _brightening(settings: kernels.BlurSettings) -> float:
    """How much brighter, in 8-bit levels, camera-synthesised blurry crops are than their targets."""
    stripes = (torch.arange(96 + 2 * MARGIN) // 3 % 2).float() * 0.8 + 0.1  # sharp bright/dark edges
    sharp = stripes.expand(32, 3, 96 + 2 * MARGIN, -1).clone()
    no_lamps = dict(light_share=0.0, highlight_gain=1.0, jpeg_share=0.0, camera_shake_share=0.0)
    blurry, target = synthesize(sharp, gen(5), kernels.BlurSettings(**no_lamps, **settings), "camera")
    return ((blurry - target).mean() * 255).item()


def test_the_drawn_tone_curve_teaches_far_less_darkening_than_linear_light_alone():
    # blurring in linear light and re-applying the concave curve brightens a photo; a network taught
    # only that learns to darken real photos, which brighten far less
    linear_only = _brightening(dict(response_exponent=(2.2, 2.2)))
    display_only = _brightening(dict(response_exponent=(1.0, 1.0)))
    drawn = _brightening({})
    assert linear_only > 10 and abs(display_only) < 1
    assert display_only < drawn < 0.7 * linear_only


def test_clipped_highlights_smear_into_longer_saturated_streaks_than_their_clipped_values_would():
    scene = torch.full((1, 1, 40, 80), 0.3)
    scene[..., 18:22, 20:24] = 1.0  # a small white light, clipped in the photo
    streak = torch.zeros(1, kernels.MAX_KERNEL, kernels.MAX_KERNEL)
    streak[0, 17, 5:30] = 1 / 25  # a 25 px horizontal shake
    linear = camera.srgb_to_linear(scene)
    clipped = camera.linear_to_srgb(kernels.blur_valid(linear, streak))
    bright = camera.brighten_highlights(linear, gen(), max_gain=30.0)
    assert bright.max() > 1.5 and torch.equal(bright[..., :10, :], linear[..., :10, :])  # only the highlight
    saturated = camera.linear_to_srgb(kernels.blur_valid(bright, streak))
    assert (saturated >= 0.999).sum() > (clipped >= 0.999).sum()


def test_light_sources_are_added_only_to_the_chosen_share_of_crops():
    scene = torch.zeros(64, 3, 32, 32)
    lit = camera.add_light_sources(scene, gen(3), share=0.5)
    with_lamps = (lit.amax((1, 2, 3)) > 1.5).float().mean().item()
    assert 0.25 < with_lamps < 0.75
    assert torch.equal(camera.add_light_sources(scene, gen(3), share=0.0), scene)


def test_sensor_noise_grows_with_the_signal_like_photon_noise():
    dark, bright = torch.full((64, 1, 32, 32), 0.02), torch.full((64, 1, 32, 32), 0.8)
    noisy_dark = camera.sensor_noise(dark, gen(1), max_shot=0.01) - dark
    noisy_bright = camera.sensor_noise(bright, gen(1), max_shot=0.01) - bright
    assert noisy_bright.std() > 2 * noisy_dark.std() > 0


def test_camera_rotation_blur_keeps_flat_images_flat_and_is_reproducible():
    flat = torch.full((2, 3, 70, 70), 0.4)
    out = camera_shake_blur(flat, gen(), MARGIN, 7, 35)
    assert out.shape == (2, 3, 70 - 2 * MARGIN, 70 - 2 * MARGIN)
    torch.testing.assert_close(out, torch.full_like(out, 0.4))
    points = torch.rand(2, 1, 70, 70, generator=gen(9))
    assert torch.equal(camera_shake_blur(points, gen(4), MARGIN, 7, 35), camera_shake_blur(points, gen(4), MARGIN, 7, 35))


def _spread(blurred_point: torch.Tensor) -> torch.Tensor:
    """The second moment of a blurred point's light about its centroid, in pixels squared."""
    weights = blurred_point / blurred_point.sum()
    ys, xs = torch.meshgrid(torch.arange(weights.shape[0]).float(), torch.arange(weights.shape[1]).float(),
                            indexing="ij")
    cy, cx = (weights * ys).sum(), (weights * xs).sum()
    return (weights * ((ys - cy) ** 2 + (xs - cx) ** 2)).sum()


def test_camera_rotation_blur_varies_across_the_frame_and_stays_within_the_margin():
    size = 4 * 48 + 2 * MARGIN
    grid = torch.zeros(16, 1, size, size)
    grid[..., MARGIN + 24::48, MARGIN + 24::48] = 1  # 4 x 4 points, 48 px apart
    blurred = camera_shake_blur(grid, gen(2), MARGIN, 20, 35)[:, 0]
    ratios = []
    for image in blurred:
        # every point's light stays in its own 48 px cell: no pixel moved further than the margin
        cells = image.view(4, 48, 4, 48).permute(0, 2, 1, 3).reshape(16, 48, 48)
        torch.testing.assert_close(cells.sum((1, 2)), torch.ones(16), atol=0.02, rtol=0)
        spreads = torch.stack([_spread(cell) for cell in cells])
        ratios.append((spreads.max() / spreads.min()).item())
    # a single kernel would give every point the same spread; rotation makes some shakes vary strongly
    assert max(ratios) > 2.0


def test_the_camera_pipeline_keeps_the_sharp_target_and_is_reproducible():
    sharp = torch.rand(4, 3, 40 + 2 * MARGIN, 40 + 2 * MARGIN, generator=gen(5))
    settings = kernels.BlurSettings(light_share=0.0)
    b1, s1 = synthesize(sharp, gen(7), settings, pipeline="camera")
    b2, _ = synthesize(sharp, gen(7), settings, pipeline="camera")
    assert b1.shape == s1.shape == (4, 3, 40, 40) and torch.equal(b1, b2)
    assert 0 <= b1.min() and b1.max() <= 1
    torch.testing.assert_close(s1, sharp[..., MARGIN:-MARGIN, MARGIN:-MARGIN], atol=0.025, rtol=0)
    assert b1.diff(dim=-1).abs().mean() < 0.5 * s1.diff(dim=-1).abs().mean()
    old, _ = synthesize(sharp, gen(7), settings)
    assert torch.equal(old, kernels.synthesize(sharp, gen(7), settings)[0])


def write_clip(folder, frames=9, size=(40, 48), step=3):
    """A bright square crossing a textured background, one PNG per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    background = random_rgb(*size, seed=1) // 2
    for t in range(frames):
        frame = background.copy()
        frame[10:20, 5 + step * t:15 + step * t] = 255
        Image.fromarray(frame).save(folder / f"{t:06d}.png")


def test_video_frames_average_into_motion_blur_with_the_middle_frame_as_target(tmp_path):
    write_clip(tmp_path / "clips" / "a")
    write_clip(tmp_path / "clips" / "b", frames=6)
    report = load_clips(tmp_path / "clips", 32, MemoryBudget(1 << 30))
    assert not report.problems and [c.name for c in report.examples] == ["clips/a", "clips/b"]
    blurry, sharp = clip_batch(report.examples, 32, 6, gen(0), gen(1), kernels.BlurSettings(jpeg_share=0,
                                                                                              max_shot=1e-4))
    assert blurry.shape == sharp.shape == (6, 3, 32, 32)
    # the square moves: the exposure smears it, so it differs from its own sharp frame
    assert (blurry - sharp).abs().amax() > 0.2


def test_a_still_clip_gives_exposures_equal_to_their_frames(tmp_path):
    write_clip(tmp_path / "still", frames=7, step=0)
    clips = load_clips(tmp_path / "still", 32, MemoryBudget(0)).examples  # no budget: frames decoded on demand
    assert clips[0].cached is None
    blurry, sharp = clip_batch(clips, 32, 4, gen(0), gen(1), kernels.BlurSettings(jpeg_share=0, max_shot=1e-4))
    torch.testing.assert_close(blurry, sharp, atol=0.03, rtol=0)


def test_bad_frame_folders_are_reported_with_their_paths(tmp_path):
    write_clip(tmp_path / "frames" / "short", frames=3)
    write_clip(tmp_path / "frames" / "mixed", frames=6)
    Image.fromarray(random_rgb(30, 30)).save(tmp_path / "frames" / "mixed" / "000009.png")
    (tmp_path / "empty").mkdir()
    problems = load_clips(tmp_path / "frames", 32, MemoryBudget(1 << 30)).problems
    assert any("short" in p and "at least 5 consecutive frames" in p for p in problems)
    assert any("000009.png" in p and "share one size" in p for p in problems)
    assert "no frames found" in load_clips(tmp_path / "empty", 32, MemoryBudget(0)).problems[0]


def test_a_frames_share_of_zero_trains_as_if_no_frames_were_given(tmp_path):
    write_clip(tmp_path / "clip", frames=7, size=(40, 48))
    for i in range(3):
        (tmp_path / "sharp").mkdir(exist_ok=True)
        Image.fromarray(random_rgb(80, 80, seed=i)).save(tmp_path / "sharp" / f"{i}.png")
    sharp = load_sharp(tmp_path / "sharp", 32).examples
    clips = load_clips(tmp_path / "clip", 32, MemoryBudget(1 << 30)).examples
    only_sharp = BatchMaker([], sharp, 32, 2, "cpu", pipeline="srgb")
    with_unused_clips = BatchMaker([], sharp, 32, 2, "cpu", pipeline="srgb", clips=clips, frames_share=0.0)
    assert torch.equal(only_sharp.batch(0, 5)[0], with_unused_clips.batch(0, 5)[0])
    frames_only = BatchMaker([], [], 32, 2, "cpu", clips=clips)
    assert frames_only.frames_share == 1.0 and frames_only.batch(0, 0)[0].shape == (2, 3, 32, 32)


runner_args = ["--config", "width=4", "--config", "blocks=1", "--crop", "32", "-b", "2"]


def test_preview_data_writes_the_pairs_training_would_see(tmp_path):
    write_clip(tmp_path / "clip", frames=7)
    out = tmp_path / "preview"
    result = runner.invoke(app, ["train", "--frames", str(tmp_path / "clip"), "--preview-data", "3", "-o", str(out),
                                 *runner_args])
    assert result.exit_code == 0, result.stderr
    pictures = sorted(out.iterdir())
    assert [p.name for p in pictures] == ["pair-000.png", "pair-001.png", "pair-002.png"]
    assert Image.open(pictures[0]).size == (2 * 32 + 8, 32)  # blurry | gap | sharp
    assert not (out / "model.safetensors").exists()
    missing = runner.invoke(app, ["train", "--frames", str(tmp_path / "clip"), "--preview-data", "3", *runner_args])
    assert missing.exit_code != 0 and "-o DIR" in missing.stderr


def test_a_run_trains_on_frames_and_records_its_synthesis(tmp_path):
    write_clip(tmp_path / "clip", frames=7)
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--frames", str(tmp_path / "clip"), "--steps", "2", "-o", str(run),
                                 "--warmup", "1", *runner_args])
    assert result.exit_code == 0, result.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"]["frames"] == [str(tmp_path / "clip")] and saved["train"]["synthesis"] == "srgb"
    bad = runner.invoke(app, ["train", "--frames", str(tmp_path / "clip"), "--synthesis", "film", "-o",
                              str(tmp_path / "other"), *runner_args])
    assert bad.exit_code != 0 and "unknown --synthesis 'film'" in bad.stderr


def test_blur_settings_change_by_name_and_refuse_what_they_cannot_parse():
    settings = kernels.blur_settings({"response_exponent": "1,1.5", "max_length": 21, "light_share": "0"})
    assert settings.response_exponent == (1.0, 1.5) and settings.max_length == 21 and settings.light_share == 0.0
    assert kernels.blur_settings({"response_exponent": [2.2, 2.2]}).response_exponent == (2.2, 2.2)
    for changes, message in (({"lamps": 0}, "'lamps' is not a blur setting"), ({"max_length": 7.5}, "expected int"),
                             ({"response_exponent": "1"}, "expected float,float")):
        with pytest.raises(ValueError, match=message):
            kernels.blur_settings(changes)


def test_a_run_trains_with_changed_blur_settings_and_keeps_them_on_resume(tmp_path):
    photos = tmp_path / "sharp"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(random_rgb(80, 90, seed=i)).save(photos / f"s{i}.png")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--sharp", str(photos), "--steps", "1", "-o", str(run), "--warmup", "1",
                                 "--synthesis", "camera", "--blur", "light_share=0", "--blur",
                                 "response_exponent=1,1.5", *runner_args])
    assert result.exit_code == 0, result.stderr
    saved = json.loads((run / "config.json").read_text())["train"]["blur"]
    assert saved == {"light_share": 0.0, "response_exponent": [1.0, 1.5]}
    resumed = runner.invoke(app, ["train", "--resume", str(run), "--steps", "2"])
    assert resumed.exit_code == 0, resumed.stderr
    config = TrainConfig(**json.loads((run / "config.json").read_text())["train"])
    config.check()
    batches = prepare_data(DataSources(sharp=[str(photos)]), config, "cpu").batches
    assert batches.blur.light_share == 0.0 and batches.blur.response_exponent == (1.0, 1.5)
    bad = runner.invoke(app, ["train", "--sharp", str(photos), "--blur", "max_length=long", *runner_args])
    assert bad.exit_code == 2 and "--blur max_length=long: expected int" in bad.stderr
