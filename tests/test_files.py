"""The one atomic file writer: usual file modes, fsync, and no partial file on failure."""
import os
import stat

import pytest

from gradviz import files
from gradviz.errors import GradvizError
from gradviz.files import write_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(directory) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(files.TEMP_PREFIX)]


def test_bytes_and_text(tmp_path):
    write_atomic(tmp_path / "a.bin", b"\x00\x01")
    write_atomic(str(tmp_path / "b.txt"), "Δf = ∂f/∂x\n")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_bytes() == "Δf = ∂f/∂x\n".encode()
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_new_file_gets_the_usual_mode(tmp_path, umask_022):
    write_atomic(tmp_path / "new.svg", "<svg/>")
    assert _mode(tmp_path / "new.svg") == 0o644


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_the_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "private.json", "{}")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.json") == 0o600


def test_replacing_keeps_no_temp_file(tmp_path):
    target = tmp_path / "f.txt"
    write_atomic(target, "old")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_a_failure_leaves_the_old_file_and_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    target.write_text("old content")

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomic(target, "new content that never lands")
    assert target.read_text() == "old content"
    assert _leftovers(tmp_path) == []


def test_a_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_a_failure_without_an_old_file_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_atomic(tmp_path / "f.txt", "data")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_directory_is_one_line(tmp_path):
    with pytest.raises(GradvizError, match="directory .* does not exist"):
        write_atomic(tmp_path / "nope" / "f.txt", "x")


def test_only_bytes_or_text(tmp_path):
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "f", 42)
    assert list(tmp_path.iterdir()) == []
