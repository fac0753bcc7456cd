"""`deblur train` / `deblur finetune` end to end on tiny networks and tiny images."""

import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from deblur.cli.app import app
from deblur.training.trainer import Trainer
from deblur.weights import load_model

from conftest import random_rgb

runner = CliRunner()
TINY_ARGS = ["--config", "width=4", "--config", "blocks=1", "--crop", "32", "-b", "2", "--warmup", "1",
             "--log-every", "1"]


def deblur(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def data(tmp_path):
    """pairs/{blur,sharp} with 3 pairs and sharp/ with 3 photos big enough for synthetic blur."""
    for i in range(3):
        sharp = random_rgb(48, 56, seed=i)
        for side, pixels in (("sharp", sharp), ("blur", sharp // 2 + 40)):
            (tmp_path / "pairs" / side).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(tmp_path / "pairs" / side / f"p{i}.png")
        (tmp_path / "sharp").mkdir(exist_ok=True)
        Image.fromarray(random_rgb(80, 90, seed=10 + i)).save(tmp_path / "sharp" / f"s{i}.jpg")
    return tmp_path


def train(data, run, *extra):
    return deblur("train", data / "pairs", "--sharp", data / "sharp", "--val", data / "sharp", "-o", run,
                  *TINY_ARGS, *extra)


def test_a_tiny_run_leaves_a_checkpoint_that_deblur_uses(data, tmp_path):
    run = tmp_path / "run"
    result = train(data, run, "--steps", "4", "--val-every", "2", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["step"] == 4
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]
    validations = [r for r in records if r["kind"] == "val"]
    assert [v["step"] for v in validations] == [2, 4]
    assert {"val_psnr", "val_ssim", "blurry_psnr", "blurry_ssim"} <= set(validations[0])
    assert sorted(p.name for p in (run / "previews").iterdir()) == ["step_0000002.jpg", "step_0000004.jpg"]
    preview = Image.open(run / "previews" / "step_0000004.jpg")
    assert preview.width > 3 * preview.height  # blurry | output | sharp

    model = load_model(weights=run / "model.safetensors")
    assert model.config == {"width": 4, "blocks": 1} and model.reblur is not None
    restored = deblur(data / "sharp" / "s0.jpg", "-o", tmp_path / "out", "--weights", run / "model.safetensors")
    assert restored.exit_code == 0, restored.stderr
    assert (tmp_path / "out" / "s0_deblur.jpg").exists()


def test_reblur_weight_zero_trains_without_the_module(data, tmp_path):
    result = train(data, tmp_path / "run", "--steps", "2", "--reblur-weight", "0", "--fft-weight", "0")
    assert result.exit_code == 0, result.stderr
    assert load_model(weights=tmp_path / "run" / "model.safetensors").reblur is None
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert "reblur" not in record and "fft" not in record


def test_resume_continues_exactly_where_it_stopped(data, tmp_path):
    assert train(data, tmp_path / "straight", "--steps", "4", "--val-every", "2").exit_code == 0
    assert train(data, tmp_path / "halves", "--steps", "2", "--val-every", "2").exit_code == 0
    resumed = deblur("train", "--resume", tmp_path / "halves", "--steps", "4")
    assert resumed.exit_code == 0, resumed.stderr
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    halves = load_file(tmp_path / "halves" / "model.safetensors")
    for name, tensor in straight.items():
        torch.testing.assert_close(halves[name], tensor, rtol=0, atol=1e-6)


def test_ctrl_c_saves_and_says_how_to_resume(data, tmp_path, monkeypatch):
    real_step = Trainer.train_step

    def interrupted_at_step_3(self, blurry, sharp):
        if self.step == 3:
            raise KeyboardInterrupt
        return real_step(self, blurry, sharp)

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_step_3)
    run = tmp_path / "run"
    result = train(data, run, "--steps", "10", "--val-every", "100")
    assert result.exit_code == 130
    assert f"deblur train --resume {run}" in result.stderr
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == 3 and (run / "model.safetensors").exists()
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert deblur("train", "--resume", run, "--steps", "5").exit_code == 0
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 5


def test_a_crash_while_saving_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert train(data, run, "--steps", "2", "--val-every", "2").exit_code == 0
    good = (run / "model.safetensors").read_bytes()

    def disk_full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    result = deblur("train", "--resume", run, "--steps", "4")
    assert result.exit_code != 0 and "No space left" in result.stderr
    assert (run / "model.safetensors").read_bytes() == good
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 2


def test_bad_data_and_reused_folders_are_refused_before_training(data, tmp_path):
    (data / "pairs" / "sharp" / "p0.png").unlink()
    result = train(data, tmp_path / "run", "--steps", "2")
    assert result.exit_code == 1 and "p0.png: no matching" in result.stderr
    assert not (tmp_path / "run").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "config.json").write_text("{}")
    result = deblur("train", "--sharp", data / "sharp", "-o", tmp_path / "used", *TINY_ARGS)
    assert result.exit_code == 2 and "already holds a training run" in result.stderr
    assert deblur("train", "--sharp", data / "sharp", "--config", "depth=3").exit_code == 2


def test_finetune_starts_from_the_checkpoint(data, tmp_path, tiny_weights):
    run = tmp_path / "tuned"
    result = deblur("finetune", data / "pairs", "--weights", tiny_weights, "-o", run, "--steps", "2",
                    "--crop", "32", "-b", "2", "--val-every", "2")
    assert result.exit_code == 0, result.stderr
    assert "no reblurring module" in result.stderr  # tiny_weights has none: a new one is trained
    config = json.loads((run / "config.json").read_text())
    assert config["init"] == str(tiny_weights) and config["train"]["lr"] == 2e-5
    assert load_model(weights=run / "model.safetensors").reblur is not None


def test_two_process_distributed_run_on_cpu(data, tmp_path):
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "deblur", "train", str(data / "pairs"), "--sharp", str(data / "sharp"), "-o", str(run),
               "--steps", "2", "--val-every", "2", *TINY_ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "x2 processes" in done.stderr
    assert load_model(weights=run / "model.safetensors").config == {"width": 4, "blocks": 1}
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # one process writes the log


def test_finetune_keeps_the_trained_reblurring_module(data, tmp_path):
    first = tmp_path / "first"
    assert train(data, first, "--steps", "1", "--val-every", "1").exit_code == 0
    result = deblur("finetune", data / "pairs", "--weights", first / "model.safetensors", "-o", tmp_path / "again",
                    "--steps", "1", "--crop", "32", "-b", "2", "--val-every", "1")
    assert result.exit_code == 0, result.stderr
    assert "no reblurring module" not in result.stderr
    started = load_model(weights=first / "model.safetensors").reblur_config
    assert json.loads((tmp_path / "again" / "config.json").read_text())["train"]["reblur_config"] == started


def test_dvsr_trains_in_the_same_loop_and_samples_from_its_checkpoint(data, tmp_path):
    run = tmp_path / "dvsr"
    result = deblur("train", data / "pairs", "--sharp", data / "sharp", "--val", data / "sharp", "-o", run,
                    "--model", "dvsr", "--config", "predictor_width=8", "--config", "denoiser_width=8",
                    "--crop", "32", "-b", "2", "--warmup", "1", "--log-every", "1", "--steps", "2", "--val-every", "2")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert "noise_l1" in records[0] and "l1" not in records[0] and "reblur" not in records[0]
    assert "val_psnr_diffusion" in records[-1]
    restored = deblur(data / "sharp" / "s1.jpg", "-o", tmp_path / "out", "--weights", run / "model.safetensors",
                      "--steps", "2", "--samples", "2", "--json")
    assert restored.exit_code == 0, restored.stderr
    assert json.loads(restored.stdout)["sampler"] == {"name": "diffusion", "steps": 2, "samples": 2, "seed": 0,
                                                      "schedule_end": None}


def test_dvsr_can_reuse_a_trained_xydeblur_as_its_fixed_predictor(data, tmp_path):
    first = tmp_path / "xy"
    assert train(data, first, "--steps", "1", "--val-every", "1").exit_code == 0
    run = tmp_path / "dvsr"
    result = deblur("train", "--sharp", data / "sharp", "--val", data / "sharp", "-o", run,
                    "--model", "dvsr", "--predictor", first / "model.safetensors", "--config", "denoiser_width=8",
                    "--crop", "32", "-b", "2", "--warmup", "1", "--steps", "2", "--val-every", "2", "--lr", "1e-2")
    assert result.exit_code == 0, result.stderr
    config = json.loads((run / "config.json").read_text())["train"]
    assert config["freeze_predictor"] and config["config"]["predictor"] == "xydeblur"
    assert (config["config"]["predictor_width"], config["config"]["predictor_blocks"]) == (4, 1)
    predictor = load_model(weights=first / "model.safetensors").network.state_dict()
    trained = load_file(run / "model.safetensors")
    assert all(torch.equal(trained[f"predictor.{name}"], tensor) for name, tensor in predictor.items())
    state = torch.load(run / "state.pt", weights_only=True)
    denoiser = [name for name in state["network"] if name.startswith("denoiser.")]
    assert len(state["optimizer"]["param_groups"][0]["params"]) == len(denoiser)  # the denoiser alone learns
    # the checkpoint restores with either sampler; steps 0 is the xydeblur network itself
    restored = deblur(data / "sharp" / "s1.jpg", "-o", tmp_path / "out", "--weights", run / "model.safetensors",
                      "--steps", "1", "--json")
    assert restored.exit_code == 0, restored.stderr


def test_finetune_grows_a_dvsr_denoiser_into_one_that_sees_the_prediction(data, tmp_path):
    first = tmp_path / "dvsr"
    assert deblur("train", "--sharp", data / "sharp", "-o", first, "--model", "dvsr", "--config",
                  "predictor_width=8", "--config", "denoiser_width=8", "--crop", "32", "-b", "2", "--warmup", "1",
                  "--steps", "1", "--val-every", "1").exit_code == 0
    run = tmp_path / "grown"
    result = deblur("finetune", "--sharp", data / "sharp", "--weights", first / "model.safetensors", "-o", run,
                    "--config", "condition=prediction", "--freeze-predictor", "--crop", "32", "-b", "2",
                    "--steps", "1", "--val-every", "1")
    assert result.exit_code == 0, result.stderr
    grown = load_model(weights=run / "model.safetensors")
    assert grown.config["condition"] == "prediction" and grown.network.denoiser.head.weight.shape[1] == 9
    # a setting the weights cannot grow into is named, not a traceback
    refused = deblur("finetune", "--sharp", data / "sharp", "--weights", first / "model.safetensors", "-o",
                     tmp_path / "wide", "--config", "denoiser_width=16", "--crop", "32", "-b", "2", "--steps", "1")
    assert refused.exit_code == 2 and "do not fit the settings" in refused.stderr


@pytest.mark.parametrize("args, message", [
    (["--model", "xydeblur"], "--predictor is for --model dvsr"),
    (["--model", "dvsr", "--config", "predictor_width=8"], "disagrees with --predictor"),
])
def test_predictor_mistakes_are_named(data, tmp_path, args, message):
    first = tmp_path / "xy"
    assert train(data, first, "--steps", "1", "--val-every", "1").exit_code == 0
    result = deblur("train", "--sharp", data / "sharp", "-o", tmp_path / "run", "--predictor",
                    first / "model.safetensors", *args, "--steps", "1")
    assert result.exit_code != 0 and message in result.stderr


def test_a_frozen_predictor_rules_out_the_predictor_loss(data, tmp_path):
    result = deblur("train", "--sharp", data / "sharp", "-o", tmp_path / "run", "--model", "dvsr",
                    "--freeze-predictor", "--predictor-weight", "1", "--steps", "1")
    assert result.exit_code != 0 and "give one of them" in result.stderr


def test_sigterm_saves_like_ctrl_c(data, tmp_path, monkeypatch):
    import signal

    real_step = Trainer.train_step

    def terminated_at_step_2(self, blurry, sharp):
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what a cluster scheduler sends before pre-empting
        return real_step(self, blurry, sharp)

    monkeypatch.setattr(Trainer, "train_step", terminated_at_step_2)
    run = tmp_path / "run"
    result = train(data, run, "--steps", "10", "--val-every", "100")
    assert result.exit_code == 130 and "--resume" in result.stderr
    assert torch.load(run / "state.pt", weights_only=True)["step"] in (2, 3)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after the run


@pytest.mark.parametrize("command", ["train", "finetune"])
@pytest.mark.parametrize("steps", ["0", "-1"])
def test_steps_below_one_are_refused_before_any_work(data, tmp_path, command, steps):
    result = deblur(command, "--sharp", data / "sharp", "-o", tmp_path / "run", "--steps", steps)
    assert result.exit_code == 2 and "--steps" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_decompression_bomb_in_the_data_is_a_clear_error_naming_it(data, tmp_path):
    from conftest import write_bomb_png

    write_bomb_png(data / "sharp" / "bomb.png")
    result = train(data, tmp_path / "run", "--steps", "2")
    assert result.exit_code != 0 and "bomb.png" in result.stderr and "over the limit" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback


def test_a_short_run_on_a_small_set_says_what_it_cannot_do_and_shortens_the_warm_up(data, tmp_path):
    run = tmp_path / "run"
    result = deblur("train", data / "pairs", "-o", run, "--config", "width=4", "--config", "blocks=1", "--crop", "32",
                    "-b", "2", "--steps", "10")
    assert result.exit_code == 0, result.output
    assert "no validation" in result.stderr and "--val DIR" in result.stderr
    assert "warm-up of 500 steps is longer than a tenth of this 10-step run; using 1" in result.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["warmup"] == 1
    chosen = deblur("train", data / "pairs", "-o", tmp_path / "chosen", "--config", "width=4", "--config", "blocks=1",
                    "--crop", "32", "-b", "2", "--steps", "10", "--warmup", "5")
    assert chosen.exit_code == 0 and "--warmup 5 is longer than a tenth" in chosen.stderr
    assert json.loads((tmp_path / "chosen" / "config.json").read_text())["train"]["warmup"] == 5
