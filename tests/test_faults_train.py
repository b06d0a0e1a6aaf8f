"""Fault injection, training side: each user mistake or fault gets one clear line and loses nothing; no result
is silently wrong. Tiny inputs (a synthetic set of ~300 images at 32 px); the rows of the reliability issue."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from camtrap_fast.shards.manifest import load_manifest

pytestmark = pytest.mark.slow

TINY = ["--epochs", "1", "--patience", "1", "--image-size", "32", "--batch-size", "32", "--workers", "0",
        "--crop-scale-min", "0.5", "--backend", "pil", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def shards(tiny_shards):
    return tiny_shards


@pytest.fixture(scope="module")
def baseline(shards, tmp_path_factory):
    from camtrap_fast.cli import main

    run = tmp_path_factory.mktemp("runs") / "baseline"
    assert main(["train", str(shards), "--out", str(run), *TINY]) == 0
    return run


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("camtrap-fast "), err
    return lines[0]


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# --- what is trained on -------------------------------------------------------------------------------------


def test_a_split_smaller_than_one_batch_is_trained_on_not_dropped(shards, tmp_path, cli):
    run = tmp_path / "big-batch"
    code, out, err = cli("train", shards, "--out", run, *TINY, "--batch-size", "100000")
    assert code == 0, err
    assert "fewer than --batch-size 100000: each epoch is one batch of" in out
    history = json.loads((run / "phase1" / "metrics.json").read_text())["history"]
    train_images = json.loads((shards / "manifest.json").read_text())["splits"]["train"]["samples"]
    assert history[0]["images"] == train_images  # every training image, not 0


def test_a_one_image_epoch_is_refused(tmp_path):
    from camtrap_fast.errors import UserError
    from camtrap_fast.shards.manifest import Manifest, SplitInfo
    from camtrap_fast.train.config import TrainConfig
    from camtrap_fast.train.distributed import World
    from camtrap_fast.train.rundir import Run
    from camtrap_fast.train.session import Session

    splits = {"train": SplitInfo(1, {"a": 1, "b": 0}, ("train/shard-000000.tar",)),
              "test": SplitInfo(2, {"a": 1, "b": 1}, ("test/shard-000000.tar",))}
    manifest = Manifest(("a", "b"), splits, 40, 90, "f" * 32, 0, root=tmp_path)
    with pytest.raises(UserError, match="a phase-1 epoch has 1 training image"):
        Session(TrainConfig(shards=tmp_path), Run(tmp_path / "run"), manifest, torch.device("cpu"), World())


def test_phase1_reports_rank_by_the_original_training_counts(shards, tmp_path, cli):
    run = tmp_path / "rebalanced"
    assert cli("train", shards, "--out", run, *TINY, "--sampling", "ros:20,rus:40")[0] == 0
    with open(run / "phase1" / "per_class.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    manifest = json.loads((shards / "manifest.json").read_text())
    original = manifest["splits"]["train"]["class_counts"]
    assert {r["Species"]: int(r["Count (Train)"]) for r in rows} == original
    from camtrap_fast.sampling import parse_sampling, plan_sampling

    plan = plan_sampling(original, parse_sampling("ros:20,rus:40"))
    # the rebalanced per-epoch counts stay beside, in their own column
    assert {r["Species"]: int(r["Count (Epoch)"]) for r in rows} == dict(zip(plan.classes, plan.target))
    assert plan.target != plan.original
    train_counts = [int(r["Count (Train)"]) for r in rows]
    assert train_counts == sorted(train_counts, reverse=True)
    metrics = json.loads((run / "phase1" / "metrics.json").read_text())
    assert metrics["per_class"][rows[0]["Species"]]["count_train"] == max(original.values())


# --- bad options: one line, nothing made -----------------------------------------------------------------------


@pytest.mark.parametrize("flags, message", [
    (["--image-size", "7"], "--image-size 7: must be a whole number of pixels >= 32"),
    (["--workers", "-2"], "--workers -2: must be a whole number >= 0"),
    (["--epochs", "0"], "--epochs 0: must be a whole number >= 1"),
    (["--head-lr", "-1"], "--head-lr -1.0: must be > 0"),
    (["--arch", "vit_b_16", "--image-size", "64"], "--image-size 64: vit_b_16 cannot take 64-px crops"),
    (["--device", "gpu"], "--device gpu: choose auto, cpu, cuda or cuda:N"),
])
def test_bad_options_are_one_line_and_leave_nothing(shards, tmp_path, cli, flags, message):
    code, _, err = cli("train", shards, "--out", tmp_path / "r", *TINY, *flags)
    assert code == 2 and message in one_line(err)
    assert not (tmp_path / "r").exists()


def test_compare_needs_two_phase_and_the_same_classes(shards, baseline, tmp_path, cli, data_dir):
    code, _, err = cli("train", shards, "--out", tmp_path / "r", *TINY, "--compare", baseline)
    assert code == 2 and "add --two-phase" in one_line(err)
    other = tmp_path / "other"
    assert cli("shard", data_dir / "ena24-small" / "labels.csv", other / "shards", "--size", "40", "--quiet",
               "--split", "0.34,0.33,0.33")[0] == 0
    assert cli("train", other / "shards", "--out", other / "run", *TINY)[0] == 0
    code, _, err = cli("train", shards, "--out", tmp_path / "r", *TINY, "--two-phase", "--compare", other / "run")
    assert code == 2 and "needs a run on the same classes" in one_line(err)
    assert not (tmp_path / "r").exists()


def test_compare_with_an_unfinished_baseline_is_refused_before_training(shards, baseline, tmp_path, cli):
    killed = tmp_path / "killed"
    shutil.copytree(baseline, killed)
    (killed / "phase1" / "metrics.json").unlink()  # killed in phase 1: config.json and classes.json are there
    code, _, err = cli("train", shards, "--out", tmp_path / "r", *TINY, "--two-phase", "--compare", killed)
    line = one_line(err)
    assert code == 2 and str(killed) in line and "phase 1 has not finished" in line and "--resume" in line
    assert not (tmp_path / "r").exists()


# --- resume ------------------------------------------------------------------------------------------------------


def test_resume_with_other_options_names_them(baseline, shards, tmp_path, cli):
    run = tmp_path / "copy"
    shutil.copytree(baseline, run)
    code, _, err = cli("train", shards, "--out", run, *TINY, "--resume", "--lr", "0.01", "--seed", "3")
    line = one_line(err)
    assert code == 2 and "--lr 0.001 in the run, 0.01 now" in line and "--seed 0 in the run, 3 now" in line


def test_resume_may_add_skip_corrupt(baseline, shards, tmp_path, cli):
    run = tmp_path / "copy"
    shutil.copytree(baseline, run)
    # what the corrupt-sample error says to pass: it changes nothing a readable sample trains on
    code, out, err = cli("train", shards, "--out", run, *TINY, "--resume", "--skip-corrupt")
    assert code == 0 and "phase 1 already finished" in out, err


def test_resume_on_resharded_data_is_refused(baseline, shards, tmp_path, cli):
    resharded = tmp_path / "shards"
    shutil.copytree(shards, resharded)
    run = tmp_path / "run"
    shutil.copytree(baseline, run)
    config = json.loads((run / "config.json").read_text())
    config["shards"] = str(resharded)
    (run / "config.json").write_text(json.dumps(config))
    (run / "shards.json").write_text(json.dumps({**json.loads((run / "shards.json").read_text()),
                                                 "path": str(resharded)}))
    # the same path, sharded again with other options: what a resume must never silently continue on
    source = shards.parent / "images" / "annotations.json"
    assert cli("shard", source, resharded, "--size", "40", "--seed", "7", "--overwrite", "--quiet")[0] == 0
    code, _, err = cli("train", resharded, "--out", run, *TINY, "--resume")
    assert code == 2 and "holds other shards than the ones" in one_line(err)


def test_a_run_killed_while_it_starts_is_resumed_from_the_start(baseline, shards, tmp_path, cli, monkeypatch):
    from camtrap_fast.train import rundir

    # config.json marks a started run, so it is written last: a kill before it leaves no config.json
    written = []
    monkeypatch.setattr(rundir.atomic, "write_text", lambda path, text: written.append(Path(path).name))
    rundir.Run(tmp_path / "order").start(rundir.Run(baseline).load_config(), load_manifest(shards),
                                         torch.device("cpu"))
    assert written[-1] == "config.json" and {"shards.json", "classes.json"} <= set(written)
    monkeypatch.undo()
    # killed after everything but config.json (what a study rerun met): resumed as a new run, not refused
    run = tmp_path / "killed"
    run.mkdir()
    for name in ("environment.json", "classes.json", "preprocessing.json"):
        shutil.copy(baseline / name, run / name)
    code, _, err = cli("train", shards, "--out", run, *TINY, "--resume")
    assert code == 0, err
    assert (run / "phase1" / "model.pt").is_file() and (run / "config.json").is_file()


def test_resume_with_more_epochs_continues_or_says_why_not(baseline, shards, tmp_path, cli):
    run = tmp_path / "copy"
    shutil.copytree(baseline, run)
    code, out, err = cli("train", shards, "--out", run, *TINY[2:], "--epochs", "2", "--patience", "5", "--resume")
    assert code == 0, err
    assert "continuing it to --epochs 2" in out
    history = json.loads((run / "phase1" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    code, out, err = cli("train", shards, "--out", run, *TINY[2:], "--epochs", "2", "--patience", "5", "--resume")
    assert code == 0 and "phase 1 already finished at epoch 2" in out and "a larger --epochs continues it" in out


# --- eval RUN ----------------------------------------------------------------------------------------------------


def test_eval_run_prints_a_summary_records_the_phase_and_follows_moved_shards(baseline, shards, tmp_path, cli,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)  # config.json holds absolute paths: eval works from anywhere
    code, out, err = cli("eval", baseline, "--split", "val")
    assert code == 0, err
    assert "split val, phase 1: accuracy" in out and str(baseline / "eval-val") in out
    assert json.loads((baseline / "eval-val" / "metrics.json").read_text())["phase"] == 1
    moved = tmp_path / "moved"
    shutil.copytree(shards, moved)
    run = tmp_path / "run"
    shutil.copytree(baseline, run)
    (run / "shards.json").write_text(json.dumps({**json.loads((run / "shards.json").read_text()),
                                                 "path": str(tmp_path / "gone")}))
    code, _, err = cli("eval", run)
    assert code == 2 and "not there any more; pass --shards NEW_PATH" in one_line(err)
    code, out, err = cli("eval", run, "--shards", moved)
    assert code == 0 and "split test, phase 1" in out, err


def test_skip_corrupt_in_train_and_eval_is_counted(baseline, shards, tmp_path, cli):
    from camtrap_fast.shards.manifest import load_manifest

    broken = tmp_path / "shards"
    shutil.copytree(shards, broken)
    index = load_manifest(broken).load_index("test")
    shard = broken / index.shards[int(index.shard_ids[0])]
    with open(shard, "r+b") as f:  # overwrite the first test sample's JPEG header
        f.seek(int(index.offsets[0]))
        f.write(b"\0" * 16)
    run = tmp_path / "run"
    shutil.copytree(baseline, run)
    (run / "shards.json").write_text(json.dumps({**json.loads((run / "shards.json").read_text()),
                                                 "path": str(broken)}))
    code, _, err = cli("eval", run)
    assert code == 1 and "--skip-corrupt" in one_line(err) and index.key(0) in err  # damaged data: a fault
    code, out, err = cli("eval", run, "--skip-corrupt")
    assert code == 0 and "1 corrupt samples skipped" in out, err
    assert json.loads((run / "eval-test" / "metrics.json").read_text())["skipped_corrupt"] == 1
    with open(run / "eval-test" / "predictions.csv", newline="") as f:
        keys = [r["key"] for r in csv.DictReader(f)]
    assert keys == index.keys()[1:]  # every row is the sample it predicts: the skipped one is left out, not shifted
    code, _, err = cli("heads", run, "--methods", "retrain,ncm", "--skip-corrupt")
    assert code == 0, err
    with open(run / "heads" / "ncm" / "predictions.csv", newline="") as f:
        assert [r["key"] for r in csv.DictReader(f)] == index.keys()[1:]
    # training meets a damaged sample again every epoch: the report counts each once, as eval does
    manifest = load_manifest(broken)
    for split, positions in (("val", [0]), ("train", [0, 1])):
        damaged = manifest.load_index(split)
        for i in positions:
            with open(broken / damaged.shards[int(damaged.shard_ids[i])], "r+b") as f:
                f.seek(int(damaged.offsets[i]))
                f.write(b"\0" * 16)
    trained = tmp_path / "trained"
    code, _, err = cli("train", broken, "--out", trained, *TINY[4:], "--epochs", "2", "--patience", "2",
                       "--skip-corrupt")
    assert code == 0, err
    metrics = json.loads((trained / "phase1" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    assert metrics["skipped_corrupt"] == {"val (eval)": 1, "test (eval)": 1, "train": 2}


def test_heads_refuses_a_run_whose_phase1_has_not_finished(baseline, tmp_path, cli):
    run = tmp_path / "killed"
    shutil.copytree(baseline, run)
    (run / "phase1" / "metrics.json").unlink()  # killed mid phase 1: model.pt is the best epoch so far
    code, _, err = cli("heads", run, "--methods", "ncm")
    line = one_line(err)
    assert code == 2 and str(run) in line and "phase 1 has not finished" in line and "--resume" in line
    assert not (run / "heads").exists()


# --- predict -------------------------------------------------------------------------------------------------------


def test_predict_outputs_symlink_stdout_and_folder(baseline, tmp_path, cli, data_dir):
    photo = data_dir / "edge-cases" / "ocelot.jpg"
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert cli("predict", baseline, photo, "--out", link)[0] == 0
    assert link.is_symlink() and real.read_text().startswith("file,detection")
    code, _, err = cli("predict", baseline, photo, "--out", tmp_path)
    assert code == 2 and "is a folder" in one_line(err)
    assert not [p for p in Path.cwd().iterdir() if p.name.endswith(".tmp")]
    code, out, err = cli("predict", baseline, photo, "--out", "-")
    assert code == 0 and out.startswith("file,detection,") and "classified 1 of 1 files" in err


def test_predict_with_nothing_readable_fails_and_skips_non_images(baseline, tmp_path, cli, data_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "README.md").write_text("not a photo")
    shutil.copy(data_dir / "edge-cases" / "african_elephants_truncated_file.jpg", folder)
    code, _, err = cli("predict", baseline, folder, "--out", tmp_path / "p.csv")
    assert code == 2 and "none of the 1 files could be classified" in one_line(err)
    assert not (tmp_path / "p.csv").exists()
    shutil.copy(data_dir / "edge-cases" / "ocelot.jpg", folder)
    code, out, err = cli("predict", baseline, folder, "--out", tmp_path / "p.csv")
    assert code == 0 and "classified 1 of 2 files" in out and "1 non-image files skipped" in out
    with open(tmp_path / "p.csv", newline="") as f:
        assert {Path(r["file"]).name for r in csv.DictReader(f)} == {"ocelot.jpg", "african_elephants_truncated_file.jpg"}


# --- the machine: disk full, umask, killed processes ---------------------------------------------------------------


def test_disk_full_is_one_line_naming_the_file_and_leaves_no_temporaries(baseline, shards, tmp_path, cli,
                                                                        monkeypatch, data_dir):
    from camtrap_fast import atomic

    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "replace", full)
    code, _, err = cli("train", shards, "--out", tmp_path / "run", *TINY)
    assert code == 1 and "environment.json: cannot write (No space left on device)" in one_line(err)  # the first
    assert no_temporaries(tmp_path)
    code, _, err = cli("predict", baseline, data_dir / "edge-cases" / "ocelot.jpg", "--out", tmp_path / "p.csv")
    assert code == 1 and f"{tmp_path / 'p.csv'}: cannot write (No space left on device)" in one_line(err)
    assert no_temporaries(tmp_path) and not (tmp_path / "p.csv").exists()


def test_reports_respect_the_umask(baseline):
    for path in (baseline / "phase1" / "metrics.json", baseline / "phase1" / "per_class.csv",
                 baseline / "phase1" / "model.pt", baseline / "config.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask(), path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_loader_workers_die_with_a_killed_parent(shards):
    script = textwrap.dedent(f"""
        import sys, time, numpy as np
        from camtrap_fast.pipelines import LoaderConfig, make_loader
        from camtrap_fast.shards.manifest import load_manifest
        loader = make_loader(load_manifest({str(shards)!r}), "train",
                             LoaderConfig(mode="train", backend="pil", device="cpu", batch_size=8, image_size=32,
                                          workers=2))
        next(iter(loader.epoch(np.arange(16), 0)))
        print("ready", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[1])
    try:
        assert process.stdout.readline().strip() == "ready"
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) >= 2
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(_alive(int(pid)) for pid in children):
            time.sleep(0.05)
        assert not any(_alive(int(pid)) for pid in children)
    finally:
        process.kill()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


# --- multi-GPU: NCCL takes CUDA tensors only -------------------------------------------------------------------------


@pytest.mark.parametrize("device, backend", [(torch.device("cpu"), "gloo"), (torch.device("cuda", 1), "nccl")])
def test_collectives_use_the_ranks_device(monkeypatch, device, backend):
    import torch.distributed as dist

    from camtrap_fast.train import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    calls = {}
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.setdefault("backend", backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("set_device", d))
    world = distributed.init_world(device)
    assert calls["backend"] == backend and world.collective_device == (device if backend == "nccl" else torch.device("cpu"))
    made = []
    real_tensor = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda data, device=None: made.append(device) or real_tensor(data))
    monkeypatch.setattr(dist, "broadcast", lambda tensor, src: None)
    assert distributed.broadcast_flag(world, True) is True
    assert made == [world.collective_device]


def test_an_unreadable_stream_is_one_line_naming_the_url(shards, tmp_path, cli):
    code, _, err = cli("train", shards, "--out", tmp_path / "r", *TINY, "--stream-from", "pipe:exit 3 #")
    line = one_line(err)
    assert code == 1 and "pipe:exit 3 #/train/shard-" in line and "cannot read the shard stream" in line


def test_scores_without_a_test_split_are_flagged_as_model_selection_scores(shards, tmp_path, cli):
    source = shards.parent / "images" / "annotations.json"
    assert cli("shard", source, tmp_path / "no-test", "--size", "40", "--split", "0.8,0.2,0", "--quiet")[0] == 0
    code, out, err = cli("train", tmp_path / "no-test", "--out", tmp_path / "run", *TINY)
    assert code == 0, err
    assert "(scores on the val split)" in out and "warning: the shards have no test split" in out.splitlines()[-1]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["split"] == "val" and "model-selection scores" in summary["warnings"][0]
    assert json.loads((tmp_path / "run" / "phase1" / "metrics.json").read_text())["split"] == "val"
