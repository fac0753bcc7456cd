import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from deblur.cli.app import app

from conftest import random_rgb

runner = CliRunner()


def deblur(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_photo_is_restored_beside_itself(photo_folder, tiny_weights):
    result = deblur(photo_folder / "a.jpg", "--weights", tiny_weights)
    assert result.exit_code == 0, result.stderr
    out = photo_folder / "a_deblur.jpg"
    assert Image.open(out).size == Image.open(photo_folder / "a.jpg").size
    assert "a_deblur.jpg" in result.stderr and result.stdout == ""


def test_run_subcommand_is_the_same_command(photo_folder, tiny_weights, tmp_path):
    result = deblur("run", photo_folder / "b.png", "--weights", tiny_weights, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "b_deblur.png").is_file()


def test_output_with_an_image_extension_is_the_result_file_for_one_photo(photo_folder, tiny_weights, tmp_path):
    target = tmp_path / "new" / "sharp.png"  # its folder does not exist yet
    result = deblur(photo_folder / "a.jpg", "--weights", tiny_weights, "-o", target)
    assert result.exit_code == 0, result.stderr
    assert target.is_file() and Image.open(target).format == "PNG"
    again = deblur(photo_folder / "a.jpg", "--weights", tiny_weights, "-o", target)
    assert again.exit_code == 1 and "already exists" in again.stderr
    several = deblur(photo_folder, "--weights", tiny_weights, "-o", tmp_path / "one.jpg")
    assert several.exit_code == 2 and "names one file" in several.stderr
    assert not (tmp_path / "one.jpg").exists()


def test_folder_json_summary_and_a_bad_file_does_not_stop_the_batch(photo_folder, tiny_weights, tmp_path):
    (photo_folder / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = deblur(photo_folder, "-r", "-o", tmp_path / "restored", "--weights", tiny_weights, "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert sorted(p["output"].split("restored/")[1] for p in summary["processed"]) == [
        "a_deblur.jpg", "b_deblur.png", "sub/c_deblur.jpg"]
    assert [f["path"].endswith("broken.jpg") for f in summary["failed"]] == [True]
    assert summary["model"]["config"] == {"width": 4, "blocks": 1} and summary["device"] == "cpu"
    assert "error: cannot read" in result.stderr and "broken.jpg" in result.stderr
    assert "3 restored, 1 skipped, 1 failed" in result.stderr


def test_compare_writes_a_side_by_side_image(photo_folder, tiny_weights):
    result = deblur(photo_folder / "b.png", "--weights", tiny_weights, "--compare")
    assert result.exit_code == 0, result.stderr
    compare = Image.open(photo_folder / "b_deblur_compare.png")
    assert compare.size == (2 * 32 + 8, 24)


def test_rgba_png_keeps_alpha_through_the_cli(tmp_path, tiny_weights):
    data = np.dstack([random_rgb(), np.arange(24 * 32, dtype=np.uint8).reshape(24, 32)])
    Image.fromarray(data, "RGBA").save(tmp_path / "logo.png")
    assert deblur(tmp_path / "logo.png", "--weights", tiny_weights).exit_code == 0
    out = np.asarray(Image.open(tmp_path / "logo_deblur.png"))
    np.testing.assert_array_equal(out[:, :, 3], data[:, :, 3])


def test_a_model_without_a_checkpoint_is_exit_3_with_advice(photo_folder, tmp_path, monkeypatch):
    catalogue = tmp_path / "zoo.json"  # a catalogue entry whose checkpoint was never published
    catalogue.write_text(json.dumps({"schema": 1, "default_model": "future", "models": {"future": {"arch": "xydeblur"}}}))
    monkeypatch.setenv("DEBLUR_MANIFEST", str(catalogue))
    result = deblur(photo_folder / "a.jpg")
    assert result.exit_code == 3
    assert "--weights" in result.stderr
    assert not (photo_folder / "a_deblur.jpg").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_exit_4(photo_folder, tiny_weights):
    result = deblur(photo_folder / "a.jpg", "--weights", tiny_weights, "--device", "cuda")
    assert result.exit_code == 4 and "not available" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--skip-existing", "--overwrite"], "contradict"),
    (["--format", "gif"], "unknown --format"),
    (["--bogus-option"], "No such option"),
])
def test_usage_errors_exit_2(photo_folder, tiny_weights, args, message):
    result = deblur(photo_folder / "a.jpg", "--weights", tiny_weights, *args)
    assert result.exit_code == 2 and message in result.output + result.stderr


def test_existing_result_is_kept_and_reported(photo_folder, tiny_weights):
    (photo_folder / "a_deblur.jpg").write_bytes(b"earlier")
    result = deblur(photo_folder / "a.jpg", "--weights", tiny_weights)
    assert result.exit_code == 1 and "--overwrite" in result.stderr
    assert (photo_folder / "a_deblur.jpg").read_bytes() == b"earlier"


def test_ctrl_c_exits_130_and_leaves_no_partial_file(photo_folder, tiny_weights, monkeypatch):
    from deblur.restorer import Restorer

    def interrupted(self, pixels, on_tile=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Restorer, "restore", interrupted)
    result = deblur(photo_folder, "--weights", tiny_weights)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert sorted(p.name for p in photo_folder.iterdir()) == ["a.jpg", "b.png", "notes.txt", "sub"]


def test_version_and_help_do_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from deblur.cli.app import app; "
            "r = CliRunner().invoke(app, ['--version']); h = CliRunner().invoke(app, ['run', '--help']); "
            "print(r.stdout.strip(), 'torch' in sys.modules, '--tile' in h.stdout)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["deblur", "0.1.0", "False", "True"]


def _checkpoint_scaled(tmp_path, tiny_weights, name: str, change) -> Path:
    from safetensors.torch import load_file, safe_open

    from deblur.checkpoints import write_checkpoint

    with safe_open(str(tiny_weights), framework="pt") as f:
        metadata = f.metadata()
    state = {k: change(v) if v.is_floating_point() else v for k, v in load_file(str(tiny_weights)).items()}
    path = tmp_path / name
    write_checkpoint(path, state, metadata["arch"], json.loads(metadata["config"]))
    return path


def test_a_checkpoint_with_nan_weights_is_refused_and_nothing_is_overwritten(photo_folder, tiny_weights, tmp_path):
    broken = _checkpoint_scaled(tmp_path, tiny_weights, "nan.safetensors", lambda v: v * float("nan"))
    (photo_folder / "a_deblur.jpg").write_bytes(b"earlier")
    result = deblur(photo_folder / "a.jpg", "--weights", broken, "--overwrite")
    assert result.exit_code == 3 and "not finite" in result.stderr
    assert (photo_folder / "a_deblur.jpg").read_bytes() == b"earlier"


def test_a_model_whose_output_is_not_finite_fails_the_photo_and_writes_nothing(photo_folder, tiny_weights, tmp_path):
    # finite weights so large that the activations overflow: NaN appears only at run time
    huge = _checkpoint_scaled(tmp_path, tiny_weights, "huge.safetensors", lambda v: v * 1e30)
    (photo_folder / "a_deblur.jpg").write_bytes(b"earlier")
    result = deblur(photo_folder / "a.jpg", "--weights", huge, "--overwrite", "--precision", "fp32")
    assert result.exit_code == 1 and "NaN or infinite" in result.stderr and "a.jpg" in result.stderr
    assert (photo_folder / "a_deblur.jpg").read_bytes() == b"earlier"


def test_a_decompression_bomb_fails_that_file_by_name_and_the_batch_goes_on(photo_folder, tiny_weights):
    from conftest import write_bomb_png

    write_bomb_png(photo_folder / "bomb.png")
    result = deblur(photo_folder, "--weights", tiny_weights, "--json")
    assert result.exit_code == 1
    assert "bomb.png" in result.stderr and "over the limit" in result.stderr and "please report" not in result.stderr
    assert (photo_folder / "a_deblur.jpg").exists() and not (photo_folder / "bomb_deblur.png").exists()


def test_rerunning_a_quoted_glob_restores_nothing_twice_and_succeeds(photo_folder, tiny_weights):
    pattern = str(photo_folder / "*.jpg")
    assert deblur(pattern, "--weights", tiny_weights).exit_code == 0
    again = deblur(pattern, "--weights", tiny_weights, "--json")
    assert again.exit_code == 0
    assert sorted(p.name for p in photo_folder.glob("*.jpg")) == ["a.jpg", "a_deblur.jpg"]
    named = deblur(photo_folder / "a_deblur.jpg", "--weights", tiny_weights)  # named one by one: restored
    assert named.exit_code == 0 and (photo_folder / "a_deblur_deblur.jpg").exists()


def test_an_unwritable_output_folder_fails_each_photo_before_restoring_it(photo_folder, tiny_weights, monkeypatch):
    from deblur.restorer import Restorer

    calls = []
    original = Restorer.restore
    monkeypatch.setattr(Restorer, "restore", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    result = deblur(photo_folder / "a.jpg", "-o", photo_folder / "b.png" / "out", "--weights", tiny_weights)
    assert result.exit_code == 1 and calls == []
    assert "a.jpg" in result.stderr and "cannot write results in the folder" in result.stderr
    assert "please report" not in result.stderr


def test_sampler_diffusion_without_a_model_uses_the_default_diffusion_model_and_times_a_real_tile(photo_folder):
    result = deblur(photo_folder / "a.jpg", "--sampler", "diffusion", "--steps", "2", "--offline")
    assert result.exit_code == 0, result.output
    assert "--sampler diffusion: using dvsr" in result.stderr
    assert "timed on the first tile" in result.stderr and (photo_folder / "a_deblur.jpg").exists()


def test_samples_without_diffusion_is_a_usage_error(photo_folder, tiny_weights):
    result = deblur(photo_folder / "a.jpg", "--weights", tiny_weights, "--samples", "4")
    assert result.exit_code == 2 and "--samples needs --sampler diffusion" in result.stderr


@pytest.mark.parametrize("command", [["run"], ["train"], ["models", "list"], []])
def test_help_shows_no_type_placeholders_and_imports_no_torch(command):
    code = ("import sys; sys.argv = ['deblur', *sys.argv[1:], '--help']\n"
            "from deblur.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "120"}).stdout
    assert "--help" in out and out.strip().endswith("NO-TORCH")
    assert "<bool>" not in out and "<str>" not in out and "<int>" not in out
