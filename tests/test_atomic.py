"""The one atomic-write helper: whole files or nothing, the umask respected, no temporaries left behind."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from camtrap_fast import atomic
from camtrap_fast.errors import Fault, UserError


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(atomic.TEMP_SUFFIX))


def test_write_replaces_whole_file_and_respects_umask(tmp_path):
    target = tmp_path / "sub" / "report.json"
    previous = os.umask(0o022)
    try:
        atomic.write_text(target, "first\n")
        atomic.write_text(target, "second\n")
    finally:
        os.umask(previous)
    assert target.read_text() == "second\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert _leftovers(target.parent) == []


def test_error_inside_the_block_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "predictions.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic.open_atomic(target, "w") as f:
            f.write("half a fi")
            raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_full_disk_is_a_fault_naming_the_target(tmp_path, monkeypatch):
    target = tmp_path / "model.pt"

    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(Fault, match=rf"{target}: cannot write \(No space left on device\)"):
        atomic.write_bytes(target, b"x" * 100)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_writing_to_dev_full_is_a_fault_and_the_device_stays(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with pytest.raises(Fault, match="/dev/full: cannot write"):
        atomic.write_bytes("/dev/full", b"x" * 100_000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # never replaced by a regular file


def test_symlink_is_written_through(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    atomic.write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_fifo_is_written_directly(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        atomic.write_text(fifo, "through the pipe")
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(UserError, match="is a folder"):
        atomic.write_text(tmp_path, "x")
    assert _leftovers(tmp_path) == []


def test_dash_writes_stdout(capfd):
    atomic.write_text("-", "to stdout\n")
    assert capfd.readouterr().out == "to stdout\n"


def test_save_torch_round_trips(tmp_path):
    import torch

    atomic.save_torch(tmp_path / "t.pt", {"w": torch.arange(3)})
    assert torch.load(tmp_path / "t.pt", weights_only=True)["w"].tolist() == [0, 1, 2]
