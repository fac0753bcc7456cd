import json

import pytest
import torch
from safetensors.torch import save_file

from deblur.archs.registry import build_network
from deblur.checkpoints import write_checkpoint
from deblur.errors import ModelError
from deblur.manifest import parse_manifest
from deblur.weights import load_model

from conftest import TINY


def manifest_with(config=TINY, files=None):
    return parse_manifest({"default_model": "xydeblur", "models": {
        "xydeblur": {"arch": "xydeblur", "config": config, "files": files or {}}}})


def test_checkpoint_metadata_is_enough_to_load(tiny_weights):
    # The manifest says the official size; the checkpoint's own metadata wins.
    model = load_model("xydeblur", tiny_weights)
    assert model.config == TINY and model.spec.size_multiple == 4
    assert not model.network.training


def test_bare_state_dict_uses_the_manifest_config(tmp_path):
    net = build_network("xydeblur", TINY)
    save_file(net.state_dict(), tmp_path / "bare.safetensors")
    model = load_model("xydeblur", tmp_path / "bare.safetensors", manifest_with(TINY))
    for name, tensor in net.state_dict().items():
        torch.testing.assert_close(model.network.state_dict()[name], tensor)


def test_pickle_checkpoints_are_refused_with_an_explanation(tmp_path):
    torch.save(build_network("xydeblur", TINY).state_dict(), tmp_path / "model.pth")
    with pytest.raises(ModelError, match="arbitrary code") as err:
        load_model("xydeblur", tmp_path / "model.pth")
    assert err.value.exit_code == 3
    # a pickle renamed to .safetensors is recognised by its content
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "model.pth").read_bytes())
    with pytest.raises(ModelError, match="not a safetensors file"):
        load_model("xydeblur", tmp_path / "model.safetensors")


def test_checkpoint_of_another_configuration_is_a_clear_error(tmp_path):
    net = build_network("xydeblur", {"width": 8, "blocks": 1})
    save_file(net.state_dict(), tmp_path / "w8.safetensors")
    with pytest.raises(ModelError, match="does not fit xydeblur"):
        load_model("xydeblur", tmp_path / "w8.safetensors", manifest_with(TINY))


def test_missing_checkpoint_says_how_to_get_one():
    with pytest.raises(ModelError, match="--weights"):
        load_model("xydeblur", manifest=manifest_with())
    with pytest.raises(ModelError, match="does not exist"):
        load_model("xydeblur", "nowhere.safetensors")


def test_unknown_model_lists_the_known_ones(tiny_weights):
    with pytest.raises(ModelError, match="known models: dvsr, shake, xydeblur"):
        load_model("nafnet", tiny_weights)


def test_written_checkpoint_records_arch_and_config(tmp_path):
    from deblur.checkpoints import read_checkpoint

    write_checkpoint(tmp_path / "c.safetensors", build_network("xydeblur", TINY).state_dict(), "xydeblur", TINY)
    _, metadata = read_checkpoint(tmp_path / "c.safetensors")
    assert metadata["arch"] == "xydeblur" and json.loads(metadata["config"]) == TINY


def test_the_same_checkpoint_is_written_byte_for_byte_the_same(tmp_path):
    """Reproducible files: shipping the same weights again must not change the manifest's sha256."""
    from deblur.checkpoints import read_checkpoint

    torch.manual_seed(0)
    state = build_network("xydeblur", TINY).state_dict()
    reblur = build_network("reblur", {"width": 8}).state_dict()
    extra = {"step": 12, "trained_by": "deblur", "note": "x"}
    for name in ("a", "b", "c"):
        write_checkpoint(tmp_path / f"{name}.safetensors", state, "xydeblur", TINY, extra=extra,
                         reblur=(reblur, {"width": 8}))
    blobs = {(tmp_path / f"{name}.safetensors").read_bytes() for name in ("a", "b", "c")}
    assert len(blobs) == 1
    loaded, metadata = read_checkpoint(tmp_path / "a.safetensors")
    assert metadata["reblur_config"] == '{"width": 8}' and metadata["step"] == "12"
    expected = {**state, **{"reblur." + k: v for k, v in reblur.items()}}
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value)
