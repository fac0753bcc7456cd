import os

import pytest

from deblur.errors import OutputError
from deblur.files import copy_atomic, write_atomic


def test_atomic_write_never_replaces_an_existing_file(tmp_path):
    target = tmp_path / "result.png"
    target.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"precious"
    write_atomic(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["result.png"]  # no temporary file left behind


def test_unwritable_destinations_are_clear_errors(tmp_path, monkeypatch):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    with pytest.raises(OutputError, match="cannot create the folder"):
        write_atomic(tmp_path / "file.txt" / "result.png", b"data")

    def disk_full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        write_atomic(tmp_path / "result.png", b"data")
    assert os.listdir(tmp_path) == ["file.txt"]


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupt(_fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "result.png", b"data")
    assert os.listdir(tmp_path) == []


def test_copy_is_complete_or_absent(tmp_path, monkeypatch):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 << 20))
    copy_atomic(source, tmp_path / "out" / "big.bin")
    assert (tmp_path / "out" / "big.bin").read_bytes() == source.read_bytes()

    def interrupt(_fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        copy_atomic(source, tmp_path / "out" / "again.bin")
    assert sorted(os.listdir(tmp_path / "out")) == ["big.bin"]


def test_a_temporary_file_of_a_killed_writer_is_removed_when_the_folder_is_next_prepared(tmp_path):
    import subprocess
    import sys

    from deblur.files import prepare_folder

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".photo_deblur.jpg.{int(dead.stdout)}-0123abcd.partial"
    live = tmp_path / f".photo2_deblur.jpg.{os.getpid()}-0123abcd.partial"  # a write in progress
    other = tmp_path / ".notes.partial"  # not of our naming
    for path in (stale, live, other):
        path.write_bytes(b"half")
    prepare_folder(tmp_path)
    assert not stale.exists() and live.exists() and other.exists()


def test_a_folder_that_cannot_hold_results_is_refused_before_any_work(tmp_path):
    from deblur.files import prepare_folder

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write results in the folder .*--output"):
        prepare_folder(tmp_path / "file" / "out")
