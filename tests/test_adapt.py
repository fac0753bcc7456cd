"""`deblur adapt`: self-reblur test-time adaptation per photo."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deblur.archs.registry import build_network
from deblur.cli.app import app
from deblur.errors import UsageError
from deblur.training.adapt import AdaptOptions, SelfReblurAdapter

from conftest import TINY, random_rgb

runner = CliRunner()
OPTIONS = AdaptOptions(iters=3, lr=1e-3, crops=2, crop_size=32, seed=1, keep_worse=True)  # mechanics, not quality


def adapter(options=OPTIONS):
    torch.manual_seed(0)
    network = build_network("xydeblur", TINY).eval().requires_grad_(False)
    return network, SelfReblurAdapter(network, build_network("reblur", {"width": 4}), "cpu", 4, options)


def test_weights_change_inside_and_come_back_after():
    network, adapt = adapter()
    original = {k: v.clone() for k, v in network.state_dict().items()}
    pixels = np.random.default_rng(0).random((40, 48, 3), dtype=np.float32)
    with adapt.adapted(pixels) as report:
        changed = any(not torch.equal(original[k], v) for k, v in network.state_dict().items())
    assert changed and report.iters == 3 and report.before > 0 and report.after > 0
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, original[name])
    assert not any(p.requires_grad for p in network.parameters())


def test_the_same_seed_gives_the_same_adaptation_and_fidelity_anchors_it():
    pixels = np.random.default_rng(1).random((40, 40, 3), dtype=np.float32)
    outcomes = []
    for options in (OPTIONS, OPTIONS, AdaptOptions(**{**OPTIONS.__dict__, "seed": 2})):
        network, adapt = adapter(options)
        with adapt.adapted(pixels):
            outcomes.append({k: v.clone() for k, v in network.state_dict().items()})
    assert all(torch.equal(outcomes[0][k], outcomes[1][k]) for k in outcomes[0])
    assert any(not torch.equal(outcomes[0][k], outcomes[2][k]) for k in outcomes[0])


def test_an_adaptation_that_raises_the_loss_is_not_used_unless_asked():
    pixels = np.random.default_rng(3).random((48, 48, 3), dtype=np.float32)
    for keep_worse in (False, True):
        network, adapt = adapter(AdaptOptions(iters=5, lr=0.5, crops=2, crop_size=32, keep_worse=keep_worse))
        original = {k: v.clone() for k, v in network.state_dict().items()}
        with adapt.adapted(pixels) as report:
            unchanged = all(torch.equal(original[k], v) for k, v in network.state_dict().items())
        assert report.after > report.before  # a huge step size made it worse
        assert report.kept is keep_worse and unchanged is not keep_worse


def test_bad_options_are_usage_errors():
    with pytest.raises(UsageError):
        adapter(AdaptOptions(crops=0))


def test_cli_adapts_each_photo_from_the_original_weights(tmp_path, with_reblur):
    for name, seed in (("a.png", 1), ("b.png", 2)):
        Image.fromarray(random_rgb(40, 44, seed=seed)).save(tmp_path / name)
    args = ["--weights", str(with_reblur), "--iters", "2", "--crop-size", "32", "--crops", "2", "--lr", "1e-3",
            "--json"]
    both = runner.invoke(app,
                         ["adapt", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "both"), *args])
    assert both.exit_code == 0, both.stderr
    processed = json.loads(both.stdout)["processed"]
    assert [p["output"] for p in processed] == [str(tmp_path / "both" / "a_adapted.png"),
                                                 str(tmp_path / "both" / "b_adapted.png")]
    assert set(processed[0]["adaptation"]) == {"self_reblur_before", "self_reblur_after", "iters", "seconds", "kept"}
    assert "self-reblur loss" in both.stderr
    alone = runner.invoke(app,
                          ["adapt", str(tmp_path / "b.png"), "-o", str(tmp_path / "alone"), *args])
    assert alone.exit_code == 0, alone.stderr
    # b adapted after a equals b adapted alone: a's adaptation did not leak into b
    assert np.array_equal(np.asarray(Image.open(tmp_path / "both" / "b_adapted.png")),
                          np.asarray(Image.open(tmp_path / "alone" / "b_adapted.png")))


def test_a_checkpoint_without_a_reblurring_module_is_a_clear_error(tmp_path, tiny_weights):
    Image.fromarray(random_rgb(seed=3)).save(tmp_path / "a.png")
    result = runner.invoke(app, ["adapt", str(tmp_path / "a.png"), "--weights", str(tiny_weights)])
    assert result.exit_code == 3 and "no reblurring module" in result.stderr and "deblur train" in result.stderr
    assert not (tmp_path / "a_adapted.png").exists()


def test_the_json_summary_carries_the_warning_that_adaptation_was_not_used(tmp_path, with_reblur):
    Image.fromarray(random_rgb(48, 48, seed=3)).save(tmp_path / "a.png")
    result = runner.invoke(app, ["adapt", str(tmp_path / "a.png"), "--weights", str(with_reblur), "--iters", "5",
                                 "--crop-size", "32", "--crops", "2", "--lr", "0.5", "--json"])
    assert result.exit_code == 0, result.stderr
    processed = json.loads(result.stdout)["processed"][0]
    assert not processed["adaptation"]["kept"]  # a huge step size (seeded) made it worse
    assert any("raised the self-reblur loss" in w for w in processed["warnings"])
    assert "raised the self-reblur loss" in result.stderr
