"""Getting checkpoints: bundled, cached, downloaded from a real HTTP server on 127.0.0.1, verified."""

import os

import pytest

from deblur import checksums
from deblur.errors import ModelError
from deblur.manifest import load_manifest
from deblur.store import UNVERIFIED, VERIFIED, VERIFIED_BY_ETAG, ModelStore
from deblur.weights import load_model

from conftest import COMMIT, NEWER_COMMIT
from fakehub import unused_port

CACHED = os.path.join("models", "tiny", "tiny.safetensors")


def gets(hub):
    return [path for method, path in hub.requests if method == "GET"]


def test_first_use_downloads_the_pinned_commit_and_verifies_it(published):
    progress = []
    model = load_model(progress=lambda *event: progress.append(event))
    assert model.name == "tiny" and model.verification == VERIFIED
    assert model.source == str(published.cache / CACHED)
    assert (published.cache / CACHED).read_bytes() == published.data
    # the manifest's commit, not main (which has moved on to other bytes)
    assert gets(published.hub) == [f"/deblur-test/tiny/resolve/{COMMIT}/tiny.safetensors"]
    assert progress[-1] == ("tiny.safetensors", len(published.data), len(published.data))


def test_second_run_makes_no_request(published):
    load_model()
    published.hub.requests.clear()
    model = load_model()
    assert published.hub.requests == [] and model.verification == VERIFIED


def test_second_run_does_not_rehash_a_verified_file(published, monkeypatch):
    load_model()
    calls = []
    real = checksums.sha256_file
    monkeypatch.setattr(checksums, "sha256_file", lambda path: calls.append(path) or real(path))
    load_model()
    assert calls == []
    # a changed file (new mtime) is hashed again: here it was damaged, so it is deleted
    cached = published.cache / CACHED
    cached.write_bytes(cached.read_bytes()[:-1] + b"X")
    with pytest.raises(ModelError, match="does not match the manifest.*deleted and not loaded") as err:
        load_model()
    assert err.value.exit_code == 3 and calls and not cached.exists()


def test_tampered_download_is_deleted_and_never_loaded(published):
    repo = published.hub.repos["deblur-test/tiny"]
    repo.commits[COMMIT]["tiny.safetensors"] = published.data[:-4] + b"evil"
    with pytest.raises(ModelError, match="downloaded from hf://deblur-test/tiny.*does not match the manifest"):
        load_model()
    assert not (published.cache / CACHED).exists()


def test_transfer_cut_short_is_never_taken_as_cached(published):
    published.hub.truncate.add("tiny.safetensors")
    with pytest.raises(ModelError, match="failed.*nothing was kept"):
        load_model()
    assert not (published.cache / CACHED).exists()
    assert published.sleeps, "the hub client retried (without the test waiting)"
    published.hub.truncate.clear()
    assert load_model().verification == VERIFIED


def test_transfer_cut_once_resumes_and_verifies(published):
    published.hub.truncate_once.add("tiny.safetensors")
    assert load_model().verification == VERIFIED
    ranged = [path for path in gets(published.hub)]
    assert len(ranged) == 2  # the second GET asked for the rest only


def test_server_down_without_a_copy_is_a_clear_error(published, monkeypatch):
    monkeypatch.setenv("DEBLUR_HF_ENDPOINT", f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(ModelError, match="cannot be reached.*deblur models download tiny") as err:
        load_model()
    assert err.value.exit_code == 3 and published.sleeps == []  # no retries on a refused connection


def test_server_down_with_a_cached_copy_still_works(published, monkeypatch):
    load_model()
    published.hub.add("someone/else", "w.safetensors", published.data, NEWER_COMMIT)
    load_model(weights="hf://someone/else/w.safetensors")  # a branch: asks the hub for news each run
    monkeypatch.setenv("DEBLUR_HF_ENDPOINT", f"http://127.0.0.1:{unused_port()}")
    assert load_model().verification == VERIFIED
    assert load_model(weights="hf://someone/else/w.safetensors").verification == VERIFIED_BY_ETAG
    assert published.sleeps == []


@pytest.mark.parametrize("how", ["flag", "DEBLUR_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_makes_no_request_and_says_what_to_run(published, monkeypatch, how):
    if how != "flag":
        monkeypatch.setenv(how, "1")
    with pytest.raises(ModelError, match=r"not available offline.*`deblur models download tiny`.*models import"):
        load_model(offline=how == "flag")
    assert published.hub.requests == [] and published.sleeps == []


def test_offline_uses_the_cache(published, monkeypatch):
    load_model()
    published.hub.requests.clear()
    monkeypatch.setenv("DEBLUR_OFFLINE", "yes")
    assert load_model().verification == VERIFIED and published.hub.requests == []


def test_hf_reference_to_a_manifest_file_is_checked_by_the_manifest(published):
    model = load_model(weights=f"hf://deblur-test/tiny/tiny.safetensors@{COMMIT}")
    assert model.verification == VERIFIED and model.source == str(published.cache / CACHED)


def test_hf_reference_outside_the_manifest_is_checked_by_etag(published):
    published.hub.add("someone/else", "w.safetensors", published.data, NEWER_COMMIT)
    model = load_model(weights="hf://someone/else/w.safetensors")
    assert model.verification == VERIFIED_BY_ETAG
    # pinned to a commit and cached: no request the second time
    load_model(weights=f"hf://someone/else/w.safetensors@{NEWER_COMMIT}")
    published.hub.requests.clear()
    load_model(weights=f"hf://someone/else/w.safetensors@{NEWER_COMMIT}")
    assert published.hub.requests == []


def test_hf_reference_with_a_non_sha_etag_is_reported_unverified(published):
    published.hub.add("someone/else", "w.safetensors", published.data, NEWER_COMMIT)
    published.hub.etags["w.safetensors"] = "0123abcd"  # a git sha1, as the hub sends for small files
    assert load_model(weights="hf://someone/else/w.safetensors").verification == UNVERIFIED


def test_hf_reference_whose_bytes_differ_from_the_etag_is_deleted(published):
    published.hub.add("someone/else", "w.safetensors", published.data, NEWER_COMMIT)
    published.hub.etags["w.safetensors"] = "f" * 64
    with pytest.raises(ModelError, match="does not match the sha256 the hub announced"):
        load_model(weights="hf://someone/else/w.safetensors")
    assert not list((published.cache / "hub").rglob("w.safetensors"))


@pytest.mark.parametrize("reference, message", [
    ("hf://deblur-test/tiny/missing.safetensors", "has no file missing.safetensors"),
    ("hf://deblur-test/tiny/tiny.safetensors@v9", "revision 'v9' does not exist in deblur-test/tiny"),
    ("hf://nobody/nothing/tiny.safetensors", "no repository nobody/nothing"),
    ("hf://just-a-name.safetensors", "not a hub reference"),
])
def test_hub_errors_are_clear(published, reference, message):
    with pytest.raises(ModelError, match=message) as err:
        load_model(weights=reference)
    assert err.value.exit_code == 3 and published.sleeps == []


def test_hf_reference_offline_without_a_copy(published):
    with pytest.raises(ModelError, match="offline mode is on"):
        load_model(weights="hf://deblur-test/tiny/tiny.safetensors@main", offline=True)
    assert published.hub.requests == []


def test_download_to_a_folder_then_import_on_an_offline_machine(published, tmp_path, monkeypatch):
    manifest = load_manifest()
    connected = ModelStore(tmp_path / "connected-cache")
    written = connected.export(manifest.entry("tiny"), tmp_path / "usb")
    assert [p.name for p in written] == ["tiny.safetensors"]

    monkeypatch.setenv("DEBLUR_OFFLINE", "1")
    (tmp_path / "usb" / "notes.txt").write_text("not a checkpoint")
    report = ModelStore().import_folder(manifest, tmp_path / "usb")
    assert report.imported == [("tiny", "tiny.safetensors")] and report.unknown == ["notes.txt"]
    published.hub.requests.clear()
    assert load_model().verification == VERIFIED and published.hub.requests == []
    again = ModelStore().import_folder(manifest, tmp_path / "usb")
    assert again.already == [("tiny", "tiny.safetensors")] and again.imported == []


def test_import_rejects_a_file_that_does_not_match(published, tmp_path):
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "local.safetensors").write_bytes(b"something else entirely")
    report = ModelStore().import_folder(load_manifest(), tmp_path / "usb")
    assert report.rejected and not report.imported
    assert not (published.cache / "models" / "local-only").exists()


def test_a_model_without_a_source_says_how_to_import_it(published):
    with pytest.raises(ModelError, match="deblur models import"):
        load_model("local-only")


def test_verify_rehashes_and_deletes_a_damaged_cached_copy(published):
    store, entry = ModelStore(), load_manifest().entry("tiny")
    assert [s.status for s in store.verify(entry)] == ["missing"]
    load_model()
    assert [s.status for s in store.verify(entry)] == ["ok"]
    cached = published.cache / CACHED
    stat = cached.stat()
    damaged = bytearray(cached.read_bytes())
    damaged[-10] ^= 1  # in the tensor data, so the file still loads
    cached.write_bytes(bytes(damaged))
    os.utime(cached, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: the stamp is fooled
    assert load_model().verification == VERIFIED  # ... the quick check trusts it
    assert [s.status for s in store.verify(entry)] == ["mismatch (deleted)"]  # verify does not
    assert not cached.exists()


def test_bundled_checkpoint_is_used_first_and_never_deleted(published, tmp_path, monkeypatch):
    import json

    bundled = tmp_path / "package-weights"
    bundled.mkdir()
    (bundled / "tiny.safetensors").write_bytes(published.data)
    data = json.loads(published.manifest.read_text())
    data["models"]["tiny"]["sources"]["bundled"] = True
    published.manifest.write_text(json.dumps(data))
    store = ModelStore(bundled_dir=bundled)
    model = load_model(store=store)
    assert model.source == str(bundled / "tiny.safetensors") and published.hub.requests == []
    (bundled / "tiny.safetensors").write_bytes(published.data[:-1] + b"?")
    with pytest.raises(ModelError, match="bundled checkpoint.*damaged.*reinstall") as error:
        load_model(store=store)
    # PyPI's 'deblur' is another project: the advice must never be to install it by name
    assert "pip install --force-reinstall deblur" not in str(error.value)
    assert "another project" in str(error.value)
    assert (bundled / "tiny.safetensors").exists()
    (tmp_path / ".git").mkdir()  # installed from a checkout (pip install -e): git restores the file
    with pytest.raises(ModelError, match=r"git -C .* checkout -- package-weights/tiny.safetensors"):
        load_model(store=store)


def test_remove_frees_the_cache_only(published):
    load_model()
    store, entry = ModelStore(), load_manifest().entry("tiny")
    assert store.remove(entry) >= len(published.data)
    assert not (published.cache / "models" / "tiny").exists()
    assert store.remove(entry) == 0
