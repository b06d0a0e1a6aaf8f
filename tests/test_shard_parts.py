"""`shard --part K/N` + `shard OUT --merge`: the same bytes as one machine, refused when the parts disagree."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def labels(tmp_path_factory, data_dir) -> Path:
    """ena24's 21 photos plus a truncated file, a text file and a missing one: rejections both before and
    while encoding, so some planned shards (of one image each, below) are never written."""
    root = tmp_path_factory.mktemp("parts")
    ena = data_dir / "ena24-small"
    shutil.copy(data_dir / "edge-cases" / "african_elephants_truncated_file.jpg", root / "cut.jpg")
    (root / "notes.jpg").write_text("not a photo")
    with open(ena / "labels.csv", newline="") as f:
        rows = [(str(ena / r["filepath"]), r["label"]) for r in csv.DictReader(f)]
    rows += [(str(root / "cut.jpg"), "Grey Fox"), (str(root / "notes.jpg"), "Bobcat"), (str(root / "gone.jpg"), "Bobcat")]
    path = root / "labels.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("filepath", "label"), *rows])
    return path


OPTIONS = ["--size", "48", "--shard-size", "1", "--split", "0.5,0.25,0.25", "--quiet"]


def _shard(*args, check=True) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "camtrap_fast", "shard", *map(str, args)], capture_output=True,
                         text=True, env=ENV, cwd=REPO)
    if check:
        assert run.returncode == 0, run.stderr
    return run


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _parts(labels: Path, out: Path, n: int) -> None:
    """N parts at once into one folder, as a job array on a shared file system would run them."""
    procs = [subprocess.Popen([sys.executable, "-m", "camtrap_fast", "shard", str(labels), str(out), *OPTIONS,
                               "--part", f"{k}/{n}"], stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)
             for k in range(n)]
    for proc in procs:
        assert proc.wait() == 0, proc.stderr.read()


@pytest.fixture(scope="module")
def one_machine(labels) -> Path:
    """The one-machine output, moved aside from OUT (the manifest records the command, OUT included)."""
    out = labels.parent / "out"
    _shard(labels, out, *OPTIONS)
    return out.rename(labels.parent / "one-machine")


@pytest.fixture
def out(labels, one_machine):
    """The OUT every run here writes to (the one-machine run's own path), moved away afterwards."""
    path = labels.parent / "out"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_three_parts_and_merge_are_byte_identical_to_one_machine(labels, one_machine, out):
    _parts(labels, out, 3)
    assert not (out / "manifest.json").exists()
    merged = _shard(out, "--merge")
    assert "rejected" in merged.stdout and merged.returncode == 0
    one, three = _files(one_machine), _files(out)
    assert sorted(one) == sorted(three)
    assert [name for name in one if one[name] != three[name]] == []
    names = set(one)
    assert {"manifest.json", "rejected.csv", "train/index.npz", "val/index.npz", "test/index.npz"} <= names
    assert not any(Path(n).name.startswith(".") for n in names)  # no part records, logs or plan left behind
    # planned shards whose one image failed to decode are not written: their numbers are skipped
    manifest = json.loads((out / "manifest.json").read_text())
    numbers = sorted(int(s[-10:-4]) for info in manifest["splits"].values() for s in info["shards"])
    assert len(numbers) == 21 and "--part" not in manifest["command"]
    with open(out / "rejected.csv", newline="") as f:
        reasons = {Path(r["path"]).name: r["reason"] for r in csv.DictReader(f)}
    assert reasons == {"cut.jpg": "truncated", "notes.jpg": "not an image", "gone.jpg": "missing file"}
    verify = subprocess.run([sys.executable, "-m", "camtrap_fast", "verify", str(out)], capture_output=True,
                            text=True, env=ENV, cwd=REPO)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_more_parts_than_shards_and_a_merge_rerun(labels, one_machine, out):
    _parts(labels, out, 30)  # 23 planned shards: seven parts have none to write
    _shard(out, "--merge")
    assert _files(out) == _files(one_machine)
    again = _shard(out, "--merge", check=False)  # nothing left to merge: said in one line
    assert again.returncode == 2 and "no finished part" in again.stderr


def _error(run: subprocess.CompletedProcess) -> str:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    return lines[0]


def test_inconsistent_parts_are_refused_in_one_line(labels, tmp_path):
    out = tmp_path / "out"
    _shard(labels, out, *OPTIONS, "--part", "0/3")
    _shard(labels, out, *OPTIONS, "--part", "2/3")
    assert "part 1/3 has not finished" in _error(_shard(out, "--merge", check=False))
    # another option into the same folder: refused before anything is written
    assert "other options" in _error(_shard(labels, out, *OPTIONS[:-1], "--size", "40", "--quiet", "--part", "1/3",
                                            check=False))
    # parts made elsewhere with other options, gathered into one folder
    other = tmp_path / "other"
    _shard(labels, other, *OPTIONS, "--seed", "1", "--part", "1/3")
    shutil.copy(other / ".shard-part-1-of-3.json", out)
    assert "made from other input or options" in _error(_shard(out, "--merge", check=False))
    (out / ".shard-part-1-of-3.json").unlink()
    _shard(labels, out, *OPTIONS, "--part", "1/4")
    assert "split 3 and 4 ways" in _error(_shard(out, "--merge", check=False))
    assert "K must be from 0 to N-1" in _error(_shard(labels, out, *OPTIONS, "--part", "3/3", check=False))
    assert "--overwrite with --part" in _error(_shard(labels, out, *OPTIONS, "--part", "0/3", "--overwrite",
                                                     check=False))


def test_a_damaged_part_shard_is_refused_by_the_merge(labels, tmp_path):
    out = tmp_path / "out"
    _parts(labels, out, 2)
    victim = sorted(out.glob("val/shard-*.tar"))[0]
    victim.write_bytes(victim.read_bytes()[:-512])
    run = _shard(out, "--merge", check=False)
    assert run.returncode == 1 and f"{victim}: missing or not the" in run.stderr
    assert not (out / "manifest.json").exists()


@pytest.mark.slow
def test_a_killed_part_resumes_and_the_merge_matches_one_machine(labels, one_machine, out):
    cmd = [sys.executable, "-m", "camtrap_fast", "shard", str(labels), str(out), *OPTIONS, "--part", "0/2"]
    proc = subprocess.Popen(cmd, env=ENV, cwd=REPO)
    deadline = time.monotonic() + 60
    while len(list(out.glob("train/shard-*.tar"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / ".shard-part-0-of-2.json").exists(), "the part finished before it could be killed"
    _shard(labels, out, *OPTIONS, "--part", "1/2")
    assert "part 0/2 has not finished" in _error(_shard(out, "--merge", check=False))
    first = min(out.glob("train/shard-*.tar"))
    inode = first.stat().st_ino
    _shard(*cmd[4:])  # the same part again (the same command: the manifest records part 0's)
    assert first.stat().st_ino == inode  # resumed: a finished shard is not written again
    _shard(out, "--merge")
    assert _files(out) == _files(one_machine)
