"""The pieces of training: synthetic blur, data checks, losses, metrics, schedule."""

import numpy as np
import pytest
import torch
from PIL import Image

from deblur.archs.registry import build_network
from deblur.errors import InputError
from deblur.metrics import gradient_magnitude, psnr, ssim
from deblur.training import kernels
from deblur.training.batches import BatchMaker
from deblur.training.data import load_pairs, load_sharp, refuse_problems, split_holdout
from deblur.training.losses import fft_loss, reblur_module_loss, self_reblur_loss, supervised_reblur_loss
from deblur.training.trainer import TrainConfig, lr_factor

from conftest import random_rgb


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_kernels_are_normalised_and_camera_shake_spans_7_to_35_px():
    for make in (kernels.motion_kernels, kernels.gaussian_kernels, kernels.defocus_kernels, kernels.random_kernels):
        k = make(32, gen())
        assert k.shape == (32, 35, 35) and k.min() >= 0
        torch.testing.assert_close(k.sum((1, 2)), torch.ones(32))
    motion = kernels.motion_kernels(64, gen(1))
    rows, cols = (motion > 0).any(2), (motion > 0).any(1)
    extent = torch.maximum(rows.sum(1), cols.sum(1))
    assert extent.min() >= 6 and extent.max() <= 35 and extent.float().std() > 3


def test_a_swinging_hand_stops_where_it_turns_and_its_kernels_stay_in_bounds():
    def slowest_over_mean_speed(paths):
        speed = (paths[:, 1:] - paths[:, :-1]).norm(dim=-1)
        return (speed.amin(1) / speed.mean(1)).median()

    swinging, walking = kernels.oscillating_paths(128, 96, gen(2)), kernels.random_walk_paths(128, 96, gen(2))
    assert slowest_over_mean_speed(swinging) < 0.25 < slowest_over_mean_speed(walking)
    motion = kernels.motion_kernels(64, gen(1), settings=kernels.BlurSettings(oscillating_share=1.0))
    torch.testing.assert_close(motion.sum((1, 2)), torch.ones(64))
    rows, cols = (motion > 0).any(2), (motion > 0).any(1)
    assert torch.maximum(rows.sum(1), cols.sum(1)).max() <= 35


def test_valid_blur_keeps_flat_images_flat_and_shrinks_by_the_kernel():
    flat = torch.full((2, 3, 50, 60), 0.3)
    out = kernels.blur_valid(flat, kernels.random_kernels(2, gen()))
    assert out.shape == (2, 3, 16, 26)
    torch.testing.assert_close(out, torch.full_like(out, 0.3))


def test_synthesis_is_reproducible_from_its_seed_and_blurs():
    sharp = torch.rand(3, 3, 32 + 34, 32 + 34, generator=gen(5))
    b1, s1 = kernels.synthesize(sharp, gen(7))
    b2, _ = kernels.synthesize(sharp, gen(7))
    b3, _ = kernels.synthesize(sharp, gen(8))
    assert b1.shape == s1.shape == (3, 3, 32, 32)
    assert torch.equal(b1, b2) and not torch.equal(b1, b3)
    # blur removes high frequencies: neighbouring pixels become more alike
    assert (b1.diff(dim=-1).abs().mean()) < 0.5 * s1.diff(dim=-1).abs().mean()


def make_pairs(root, names, size=(48, 40)):
    for name in names:
        (root / "blur").mkdir(parents=True, exist_ok=True)
        (root / "sharp").mkdir(parents=True, exist_ok=True)
        sharp = random_rgb(size[1], size[0], seed=len(name))
        Image.fromarray(sharp).save(root / "sharp" / name)
        Image.fromarray(sharp // 2).save(root / "blur" / name)


@pytest.mark.parametrize("layout", [("blur", "sharp"), ("input", "target"), ("blurry", "gt")])
def test_every_pair_layout_is_found(tmp_path, layout):
    make_pairs(tmp_path, ["a.png", "b.png"])
    (tmp_path / "blur").rename(tmp_path / layout[0])
    if layout[1] != "sharp":
        (tmp_path / "sharp").rename(tmp_path / layout[1])
    report = load_pairs(tmp_path, 32)
    assert report.problems == [] and len(report.examples) == 2


def test_all_data_problems_are_reported_at_once(tmp_path):
    make_pairs(tmp_path, ["ok.png", "lonely.png", "small.png"])
    (tmp_path / "sharp" / "lonely.png").unlink()
    Image.fromarray(random_rgb(20, 20)).save(tmp_path / "blur" / "small.png")
    Image.fromarray(random_rgb(20, 20)).save(tmp_path / "sharp" / "small.png")
    make_pairs(tmp_path, ["odd.png"])
    Image.fromarray(random_rgb(30, 30)).save(tmp_path / "sharp" / "odd.png")
    (tmp_path / "blur" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "sharp" / "broken.png").write_bytes(b"not a png")
    problems = load_pairs(tmp_path, 32).problems
    assert len(problems) == 4
    text = "\n".join(problems)
    for expected in ("lonely.png: no matching", "small.png: 20x20 is smaller than the 32 px crop",
                     "odd.png: size 48x40 differs", "broken.png: unreadable"):
        assert expected in text
    with pytest.raises(InputError, match="4 problem"):
        refuse_problems(problems)
    assert load_pairs(tmp_path / "nothing", 32).problems[0].endswith("blurry/ + gt/")


def test_a_folder_of_photos_given_as_pairs_is_told_to_use_sharp(tmp_path):
    Image.fromarray(random_rgb(60, 60)).save(tmp_path / "photo.jpg")
    (problem,) = load_pairs(tmp_path, 32).problems
    assert problem.endswith(f"give it as --sharp {tmp_path}")
    (empty := tmp_path / "empty").mkdir()
    assert "--sharp" not in load_pairs(empty, 32).problems[0]


def test_sharp_photos_need_room_for_the_blur(tmp_path):
    Image.fromarray(random_rgb(60, 60)).save(tmp_path / "small.jpg")
    Image.fromarray(random_rgb(70, 70)).save(tmp_path / "fine.jpg")
    report = load_sharp(tmp_path, 32)
    assert len(report.examples) == 1 and "plus 34 px" in report.problems[0]


def test_holdout_is_fixed_by_name():
    class E:
        def __init__(self, name):
            self.name = name

    examples = [E(f"img{i}") for i in range(40)]
    train, held = split_holdout(examples, 4)
    assert len(held) == 4 and len(train) == 36
    held_again = split_holdout(list(reversed(examples)), 4)[1]
    assert {e.name for e in held_again} == {e.name for e in held}


def test_batches_depend_only_on_seed_and_step_and_pairs_stay_aligned(tmp_path):
    make_pairs(tmp_path, ["a.png", "b.png", "c.png"])
    maker = BatchMaker(load_pairs(tmp_path, 32).examples, [], 32, 4, "cpu")
    b1, s1 = maker.batch(seed=1, step=5)
    b2, s2 = maker.batch(seed=1, step=5)
    b3, _ = maker.batch(seed=1, step=6)
    assert torch.equal(b1, b2) and torch.equal(s1, s2) and not torch.equal(b1, b3)
    # blur/ holds sharp // 2: the same crop, flip and rotation reached both
    torch.testing.assert_close(b1 * 255, torch.floor(s1 * 255 / 2), atol=1e-3, rtol=0)


def test_fft_loss_is_zero_only_for_equal_images():
    x = torch.rand(2, 3, 16, 16)
    assert fft_loss(x, x) == 0 and fft_loss(x, x.flip(-1)) > 0


def test_reblur_module_step_does_not_touch_the_deblurred_image():
    reblur = build_network("reblur", {"width": 4, "blocks": 1})
    deblurred = torch.rand(2, 3, 16, 16, requires_grad=True)
    blur_term, sharp_term = reblur_module_loss(reblur, deblurred, torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    (blur_term + sharp_term).backward()
    assert deblurred.grad is None and reblur.head[0].weight.grad is not None


def test_supervised_and_self_reblur_losses_train_only_the_deblurred_image():
    reblur = build_network("reblur", {"width": 4, "blocks": 1}).requires_grad_(False)
    for loss_of in (lambda d: supervised_reblur_loss(reblur, d, torch.rand(1, 3, 16, 16)),
                    lambda d: self_reblur_loss(reblur, d)):
        deblurred = torch.rand(1, 3, 16, 16, requires_grad=True)
        loss_of(deblurred).backward()
        assert deblurred.grad is not None and deblurred.grad.abs().sum() > 0
        assert reblur.head[0].weight.grad is None


def test_psnr_and_ssim_follow_their_definitions():
    x = torch.full((1, 3, 32, 32), 0.5)
    assert psnr(x, x + 0.1).item() == pytest.approx(20.0, abs=1e-3)
    image = torch.rand(1, 3, 32, 32, generator=gen())
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-5)
    noisy = [(image + s * torch.randn(image.shape, generator=gen(1))).clamp(0, 1) for s in (0.05, 0.2)]
    assert 1 > ssim(noisy[0], image) > ssim(noisy[1], image)


def test_gradient_magnitude_falls_with_blur_and_rises_with_noise():
    ramp = torch.linspace(0, 1, 33)[None, None, None, :].expand(1, 3, 8, 33)
    assert gradient_magnitude(ramp).item() == pytest.approx(1 / 32, rel=1e-4)  # a slope of 1/32 per pixel
    image = torch.rand(1, 3, 32, 32, generator=gen())
    blurred = torch.nn.functional.avg_pool2d(image, 3, 1, 1, count_include_pad=False)
    noisy = (image + 0.1 * torch.randn(image.shape, generator=gen(1))).clamp(0, 1)
    assert gradient_magnitude(blurred) < gradient_magnitude(image) < gradient_magnitude(noisy)


def test_schedule_warms_up_then_decays():
    config = TrainConfig(steps=100, warmup=10, min_lr_ratio=0.01)
    assert lr_factor(config, 0) == pytest.approx(0.1) and lr_factor(config, 9) == pytest.approx(1.0)
    assert lr_factor(config, 10) == pytest.approx(1.0) and lr_factor(config, 100) == pytest.approx(0.01)
    assert lr_factor(config, 55) == pytest.approx(0.505)
    step = TrainConfig(steps=100, warmup=0, schedule="step", step_every=30)
    assert [lr_factor(step, s) for s in (0, 29, 30, 60)] == [1.0, 1.0, 0.5, 0.25]


def test_pixels_are_uint8_rgb_even_for_gray_and_16_bit(tmp_path):
    from deblur.training.data import to_uint8_rgb

    Image.fromarray(np.full((4, 4), 128, np.uint8)).save(tmp_path / "g.png")
    assert to_uint8_rgb(tmp_path / "g.png").shape == (4, 4, 3)


@pytest.mark.parametrize("native, amp, expected", [(True, True, "bf16"), (True, False, "fp32"), (False, True, "fp32")])
def test_cpu_training_uses_bf16_only_where_the_processor_has_it(monkeypatch, tmp_path, native, amp, expected):
    from deblur import devices
    from deblur.training.run_dir import RunDir
    from deblur.training.trainer import Trainer

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    config = TrainConfig(config={"width": 4, "blocks": 1}, steps=1, crop=16, amp=amp, ema=0.9)
    trainer = Trainer(config, None, None, RunDir(tmp_path), "cpu")
    assert trainer.precision == expected
    blurry, sharp = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    trainer.train_step(blurry, sharp)
    # master weights and their average stay fp32 whatever the compute precision
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())
    assert all(v.dtype == torch.float32 for v in trainer.ema.state_dict().values())
