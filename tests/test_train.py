"""`camtrap-fast train`, `eval RUN`, `predict` and torchrun end to end on a tiny synthetic set (CPU)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

TINY = ["--epochs", "2", "--patience", "2", "--image-size", "32", "--batch-size", "32", "--workers", "0",
        "--crop-scale-min", "0.5", "--backend", "pil", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def two_phase_run(tiny_shards, tmp_path_factory):
    from camtrap_fast.cli import main

    run = tmp_path_factory.mktemp("runs") / "two-phase"
    assert main(["train", str(tiny_shards), "--out", str(run), "--two-phase", "--sampling", "ros:20,rus:40",
                 "--head-epochs", "5", *TINY]) == 0
    return run


def test_two_phase_run_writes_every_report(two_phase_run, tiny_shards):
    from camtrap_fast.shards.manifest import load_manifest

    manifest = load_manifest(tiny_shards)
    for name in ("config.json", "environment.json", "classes.json", "checkpoint.pt", "summary.json"):
        assert (two_phase_run / name).is_file(), name
    for phase in ("phase1", "phase2"):
        d = two_phase_run / phase
        for name in ("model.pt", "metrics.json", "per_class.csv", "predictions.csv", "confusion_matrix.png"):
            assert (d / name).is_file(), f"{phase}/{name}"
        with open(d / "per_class.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["Species", "Precision", "Recall", "F1-score", "Count (Train)", "Count (Epoch)",
                                 "Count (Test)"]
        assert len(rows) == manifest.num_classes
        counts = [int(r["Count (Train)"]) for r in rows]
        assert counts == sorted(counts, reverse=True)
        with open(d / "predictions.csv", newline="") as f:
            assert len(list(csv.DictReader(f))) == manifest.splits["test"].samples
    assert (two_phase_run / "phase2" / "f1_change.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    phase1 = json.loads((two_phase_run / "phase1" / "metrics.json").read_text())
    phase2 = json.loads((two_phase_run / "phase2" / "metrics.json").read_text())
    # phase 1 trained on the ROS/RUS plan, phase 2 on the original distribution
    with open(two_phase_run / "phase1" / "per_class.csv", newline="") as f:
        assert max(int(r["Count (Epoch)"]) for r in csv.DictReader(f)) <= 40
    assert phase2["feature_extraction_seconds"] > 0 and phase2["head_training_seconds"] > 0
    assert 0 <= phase1["macro_f1"] <= 1 and 0 <= phase2["accuracy"] <= 1
    for split in ("train", "val", "test"):
        assert (two_phase_run / "features" / f"{split}.pt").is_file()
    # the phase-2 model differs from phase 1 only in the final layer
    m1 = torch.load(two_phase_run / "phase1" / "model.pt", weights_only=True)
    m2 = torch.load(two_phase_run / "phase2" / "model.pt", weights_only=True)
    changed = {k for k in m1 if not torch.equal(m1[k], m2[k])}
    assert changed <= {"fc.weight", "fc.bias"} and changed


def test_stale_feature_cache_is_refused(two_phase_run):
    from camtrap_fast.train.features import StaleFeatureCache, load_features

    path = two_phase_run / "features" / "train.pt"
    assert load_features(path, torch.load(path, weights_only=True)["tag"]) is not None
    with pytest.raises(StaleFeatureCache):
        load_features(path, "another-checkpoint")


def test_eval_run_and_predict(two_phase_run, tmp_path, data_dir, cli):
    code, out, err = cli("eval", two_phase_run, "--split", "val")
    assert code == 0, err
    assert (two_phase_run / "eval-val" / "metrics.json").is_file()

    photos = data_dir / "edge-cases"
    code, out, err = cli("predict", two_phase_run, photos, "--out", tmp_path / "preds.csv", "--top-k", "3")
    assert code == 0, err
    with open(tmp_path / "preds.csv", newline="") as f:
        rows = {Path(r["file"]).name: r for r in csv.DictReader(f)}
    assert len(rows) == len([p for p in photos.iterdir() if p.suffix == ".jpg"])  # README.md is skipped
    assert rows["african_elephants_truncated_file.jpg"]["error"].startswith("truncated")
    for name in ("african_elephants_cmyk.jpg", "african_elephants_bw.jpg", "african_elephants_with_exif_orientation.jpg"):
        row = rows[name]
        assert row["class_1"] and not row["error"] and row["class_3"] and "class_4" not in row
        assert float(row["probability_1"]) >= float(row["probability_2"]) >= float(row["probability_3"])


def test_existing_run_needs_resume_and_resume_continues(tiny_shards, tmp_path, cli):
    run = tmp_path / "base"
    args = ["train", tiny_shards, "--out", run, *TINY]
    assert cli(*args)[0] == 0
    code, _, err = cli(*args)
    assert code == 2 and "--resume" in err
    history = json.loads((run / "phase1" / "metrics.json").read_text())["history"]
    # resume with more epochs continues from the checkpoint instead of starting over
    os.remove(run / "phase1" / "metrics.json")
    code, _, err = cli("train", tiny_shards, "--out", run, *TINY, "--resume", "--epochs", "3")
    assert code == 0, err
    resumed = json.loads((run / "phase1" / "metrics.json").read_text())["history"]
    assert resumed[: len(history)] == history and len(resumed) >= len(history)


def test_bad_weights_file_is_a_clear_error(tiny_shards, tmp_path, cli):
    bad = tmp_path / "weights.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, bad)
    code, _, err = cli("train", tiny_shards, "--out", tmp_path / "r", "--weights", bad, *TINY)
    assert code == 2 and str(bad) in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()  # nothing half-made to trip over on the corrected rerun
    code, _, err = cli("train", tiny_shards, "--out", tmp_path / "r", "--sampling", "bogus", *TINY)
    assert code == 2 and "valid forms" in err and not (tmp_path / "r").exists()


def test_torchrun_two_cpu_processes(tiny_shards, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "camtrap_fast", "train", str(tiny_shards), "--out", str(run), *TINY]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run / "phase1" / "metrics.json").read_text())
    history = metrics["history"]
    assert history and all(h["images"] > 0 for h in history)


def test_streaming_train_from_url_prefix(tiny_shards, tmp_path, cli):
    """--stream-from: the train shards are read through webdataset's openers (pipe: here, http/s3 alike)."""
    run = tmp_path / "streamed"
    code, out, err = cli("train", tiny_shards, "--out", run, "--stream-from", f"pipe:cat {tiny_shards}",
                         "--sampling", "ros:20,rus:40", "--epochs", "1", *TINY[2:])
    assert code == 0, err
    history = json.loads((run / "phase1" / "metrics.json").read_text())["history"]
    from camtrap_fast.sampling import parse_sampling, plan_sampling
    from camtrap_fast.shards.manifest import load_manifest

    plan = plan_sampling(load_manifest(tiny_shards).splits["train"].class_counts, parse_sampling("ros:20,rus:40"))
    # every epoch saw the plan's exact number of samples (train drops the last partial batch of 32)
    assert history[0]["images"] == plan.total_target // 32 * 32


def test_eval_aggregates_sequences_beside_frames(two_phase_run, tiny_shards, cli):
    from camtrap_fast.shards.manifest import load_manifest

    code, out, err = cli("eval", two_phase_run, "--aggregate", "sequence")
    assert code == 0, err
    index = load_manifest(tiny_shards).load_index("test")
    sequences = index.sequences()
    assert all(sequences) and len(set(sequences)) < len(index)  # the synthetic captures have several frames
    frames = json.loads((two_phase_run / "eval-test" / "metrics.json").read_text())
    pooled = json.loads((two_phase_run / "eval-test" / "sequences" / "metrics.json").read_text())
    assert frames["num_samples"] == len(index) and pooled["num_samples"] == len(set(sequences))
    assert pooled["level"] == "sequence" and pooled["frames"] == len(index)
    assert f"{len(set(sequences))} sequences ({len(index)} frames and crops)" in out
    with open(two_phase_run / "eval-test" / "sequences" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["key"] for r in rows} == {f"seq:{s}" for s in sequences}
    label_of = dict(zip(sequences, (load_manifest(tiny_shards).classes[i] for i in index.labels)))
    assert all(r["true"] == label_of[r["key"][4:]] for r in rows)  # one species per synthetic capture
