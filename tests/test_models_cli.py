"""`deblur models ...` and first-use download through `deblur PHOTO`, against the local fake hub."""

import json

from typer.testing import CliRunner

from deblur.cli.app import app

runner = CliRunner()


def deblur(*args, **env):
    return runner.invoke(app, [str(a) for a in args], env=env or None)


def test_list_shows_where_each_model_would_load_from(published):
    result = deblur("models", "list", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["models"]}
    assert rows["tiny"]["loads_from"].startswith("hub (download") and not rows["tiny"]["cached"]
    assert rows["tiny"]["licence"] == "test-only" and rows["tiny"]["default"]
    assert rows["local-only"]["loads_from"] == "missing (import it)"
    assert deblur("models", "download", "tiny").exit_code == 0
    rows = {row["name"]: row for row in json.loads(deblur("models", "list", "--json").stdout)["models"]}
    assert rows["tiny"]["loads_from"] == "cache" and rows["tiny"]["cached"]
    table = deblur("models", "list").stdout
    assert "tiny (default)" in table and "test-only" in table


def test_download_info_path_verify_rm(published):
    result = deblur("models", "download", "tiny", "--json")
    assert result.exit_code == 0, result.stderr
    assert "downloading tiny.safetensors" in result.stderr
    [download] = json.loads(result.stdout)["downloads"]
    assert download["origin"] == "hub" and download["verification"] == "sha256 from the manifest"

    path = deblur("models", "path", "tiny").stdout.strip()
    assert path == download["path"] and open(path, "rb").read() == published.data
    info = json.loads(deblur("models", "info", "tiny", "--json").stdout)
    assert info["files"]["weights"]["sha256"] == published.sha256 and info["loads_from"] == "cache"

    verify = deblur("models", "verify", "tiny", "--json")
    assert verify.exit_code == 0 and json.loads(verify.stdout)["files"][0]["status"] == "ok"
    with open(path, "r+b") as f:
        f.seek(-3, 2)
        f.write(b"BAD")
    verify = deblur("models", "verify", "tiny")
    assert verify.exit_code == 3 and "mismatch (deleted)" in verify.stderr

    assert deblur("models", "download", "tiny").exit_code == 0
    removed = deblur("models", "rm", "tiny", "--json")
    assert json.loads(removed.stdout)["removed"][0]["freed_bytes"] >= len(published.data)
    missing = deblur("models", "path", "tiny")
    assert missing.exit_code == 3 and "deblur models download tiny" in missing.stderr


def test_carry_to_an_air_gapped_machine(published, tmp_path):
    carried = tmp_path / "usb"
    result = deblur("models", "download", "--all", "--to", carried)
    # `local-only` has no source: reported, and the others still carried
    assert result.exit_code == 3 and "models import" in result.stderr
    assert (carried / "tiny.safetensors").read_bytes() == published.data

    other_cache = tmp_path / "air-gapped-cache"
    imported = deblur("models", "import", carried, "--json", DEBLUR_CACHE_DIR=str(other_cache), DEBLUR_OFFLINE="1")
    assert imported.exit_code == 0, imported.stderr
    assert json.loads(imported.stdout)["imported"] == [{"model": "tiny", "file": "tiny.safetensors"}]
    published.hub.requests.clear()
    listed = deblur("models", "path", "tiny", DEBLUR_CACHE_DIR=str(other_cache), DEBLUR_OFFLINE="1")
    assert listed.stdout.strip() == str(other_cache / "models" / "tiny" / "tiny.safetensors")
    assert published.hub.requests == []


def test_import_of_a_tampered_folder_fails(published, tmp_path):
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "tiny.safetensors").write_bytes(published.data[:-1] + b"!")
    result = deblur("models", "import", tmp_path / "usb")
    assert result.exit_code == 3 and "sha256 differs" in result.stderr
    empty = deblur("models", "import", tmp_path)
    assert empty.exit_code == 1 and "holds no checkpoint file" in empty.stderr


def test_first_photo_downloads_then_runs_offline(published, photo_folder, tmp_path):
    first = deblur(photo_folder / "a.jpg", "-o", tmp_path / "out1", "--json")
    assert first.exit_code == 0, first.stderr
    assert "downloading tiny.safetensors" in first.stderr
    assert json.loads(first.stdout)["model"]["verification"] == "sha256 from the manifest"
    published.hub.requests.clear()
    second = deblur(photo_folder / "a.jpg", "-o", tmp_path / "out2", "--offline")
    assert second.exit_code == 0 and published.hub.requests == []
    assert "downloading" not in second.stderr


def test_offline_photo_without_a_copy_exits_3_with_the_fix(published, photo_folder):
    result = deblur(photo_folder / "a.jpg", "--offline")
    assert result.exit_code == 3
    assert "deblur models download tiny" in result.stderr and published.hub.requests == []
    assert not (photo_folder / "a_deblur.jpg").exists()


def test_unknown_model_is_exit_3(published):
    result = deblur("models", "info", "nafnet")
    assert result.exit_code == 3 and "known models: local-only, tiny" in result.stderr


def test_manifest_inference_defaults_apply_unless_overridden(published, photo_folder, tmp_path):
    data = json.loads(published.manifest.read_text())
    data["models"]["tiny"]["inference"] = {"precision": "fp32", "overlap": 8}
    published.manifest.write_text(json.dumps(data))
    result = deblur(photo_folder / "a.jpg", "-o", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["overlap"] == 8
    result = deblur(photo_folder / "a.jpg", "-o", tmp_path / "p", "--json", "--overlap", "16")
    assert json.loads(result.stdout)["overlap"] == 16

    from deblur.weights import load_model

    model = load_model()
    assert model.precision_for("auto") == "fp32" and model.precision_for("bf16") == "bf16"


def test_models_list_does_not_import_torch(published):
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from deblur.cli.app import app; "
            "r = CliRunner().invoke(app, ['models', 'list', '--json']); "
            "print(r.exit_code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "False"]


def test_info_shows_the_training_recipe_and_the_measurements(published):
    data = json.loads(published.manifest.read_text())
    data["models"]["tiny"]["training"] = {
        "data": "sharp photos", "phases": [{"steps": 600, "wall_seconds": 1800, "hardware": "2 CPU cores",
                                            "command": "deblur train --model xydeblur --steps 600",
                                            "final_validation": {"val_psnr": 21.2, "blurry_psnr": 20.4}}]}
    data["models"]["tiny"]["metrics"] = [{"set": "gopro", "images": "all", "setting": "default", "psnr": 27.5,
                                          "ssim": 0.81, "blurry_psnr": 26.2, "blurry_ssim": 0.78,
                                          "seconds_per_mp": 3.1, "command": "python bench/quality.py"}]
    published.manifest.write_text(json.dumps(data))
    result = deblur("models", "info", "tiny")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "training phase 1: 600 steps, 30 min on 2 CPU cores; validation PSNR 21.20 dB (blurry 20.40)" in text
    assert "deblur train --model xydeblur --steps 600" in text
    assert "measured on gopro (all), default: PSNR 27.5 dB (blurry 26.20 dB), SSIM 0.81, 3.1 s/MP" in text
    assert "measured with: python bench/quality.py" in text
