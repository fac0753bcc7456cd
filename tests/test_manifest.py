import json

import pytest

from deblur.errors import ModelError
from deblur.manifest import load_manifest, parse_manifest

from conftest import COMMIT, TINY

GOOD_FILE = {"filename": "w.safetensors", "sha256": "0" * 64, "size": 10}


def manifest_with(**fields):
    return parse_manifest({"default_model": "m", "models": {"m": {"arch": "xydeblur", "config": TINY, **fields}}})


def test_bundled_manifest_is_valid():
    manifest = load_manifest()
    assert manifest.default_model in manifest.models


@pytest.mark.parametrize("filename", ["../evil.safetensors", "/etc/passwd", "sub/dir.safetensors", ""])
def test_manifest_file_names_may_not_escape_their_folder(filename):
    with pytest.raises(ModelError, match="plain file name"):
        manifest_with(files={"weights": {**GOOD_FILE, "filename": filename}})


def test_malformed_manifest_is_rejected(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError, match="malformed"):
        load_manifest(tmp_path / "m.json")
    (tmp_path / "m.json").write_text(json.dumps({"default_model": "x", "models": {"y": {"arch": "xydeblur"}}}))
    with pytest.raises(ModelError, match="default_model"):
        load_manifest(tmp_path / "m.json")




def test_a_full_entry_is_read_into_typed_fields():
    entry = manifest_with(
        files={"weights": GOOD_FILE}, licence="research use", description="d",
        sources={"bundled": True, "hub": {"repo_id": "org/repo", "revision": COMMIT}},
        training={"data": "x"}, metrics=[{"set": "kodak24", "psnr": 30.0}], inference={"tile": 512},
    ).entry("m")
    assert entry.files["weights"].size == 10 and entry.bundled and entry.hub.repo_id == "org/repo"
    assert entry.hub.reference("w.safetensors") == f"hf://org/repo/w.safetensors@{COMMIT}"
    assert entry.as_json()["sources"]["hub"]["revision"] == COMMIT


@pytest.mark.parametrize("fields, message", [
    ({"lisence": "MIT"}, "unknown field 'lisence'"),
    ({"files": {"weights": {**GOOD_FILE, "sha256": "abc"}}}, "64 lowercase hex"),
    ({"files": {"weights": {**GOOD_FILE, "size": "10"}}}, "'size' must be int"),
    ({"files": {"weights": {**GOOD_FILE, "size": 0}}}, "must be positive"),
    ({"sources": {"hub": {"repo_id": "org/repo", "revision": "main"}}}, "40-hex commit"),
    ({"sources": {"hub": {"repo_id": "no-slash", "revision": COMMIT}}}, "org/name"),
    ({"sources": {"bundled": "yes"}}, "sources.bundled must be bool"),
    ({"config": [1, 2]}, "'config' must be dict"),
    ({"inference": {"precision": "fp16"}}, "inference.precision must be one of auto, fp32"),
    ({"inference": {"overlap": -1}}, "overlap must not be negative"),
    ({"inference": {"steps_cpu": -5}}, "steps_cpu must not be negative"),
    ({"inference": {"steps_gpu": "many"}}, "steps_gpu"),
])
def test_malformed_entries_name_the_field(fields, message):
    with pytest.raises(ModelError, match=message):
        manifest_with(**fields)


def test_newer_schema_asks_for_an_upgrade():
    with pytest.raises(ModelError, match="upgrade deblur"):
        parse_manifest({"schema": 2, "default_model": "m", "models": {"m": {"arch": "xydeblur"}}})


def test_deblur_manifest_selects_another_catalogue(tmp_path, monkeypatch):
    (tmp_path / "zoo.json").write_text(json.dumps({"default_model": "mine", "models": {"mine": {"arch": "xydeblur"}}}))
    monkeypatch.setenv("DEBLUR_MANIFEST", str(tmp_path / "zoo.json"))
    assert load_manifest().default_model == "mine"
    monkeypatch.setenv("DEBLUR_MANIFEST", str(tmp_path / "missing.json"))
    with pytest.raises(ModelError, match="cannot read the manifest"):
        load_manifest()
