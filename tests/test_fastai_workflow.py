"""The fast.ai workflow end to end on tiny shards: lr-find, train --lr auto --freeze-epochs --monitor loss,
validation loss in the log and history, eval --frames first, and study --loss ... --frames first."""

from __future__ import annotations

import csv
import re
import json

import pytest
import torch

pytestmark = pytest.mark.slow

TINY = ["--image-size", "32", "--batch-size", "32", "--workers", "0", "--crop-scale-min", "0.5", "--backend", "pil",
        "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def auto_run(tiny_shards, tmp_path_factory):
    from camtrap_fast.cli import main

    run = tmp_path_factory.mktemp("runs") / "auto"
    assert main(["train", str(tiny_shards), "--out", str(run), "--two-phase", "--epochs", "3", "--patience", "1",
                 "--freeze-epochs", "1", "--monitor", "loss", "--lr", "auto", "--head-epochs", "2", *TINY]) == 0
    return run


def test_lr_auto_freeze_and_monitor_loss(auto_run):
    finding = json.loads((auto_run / "lr_find" / "lr_find.json").read_text())
    assert (auto_run / "lr_find" / "lr_find.png").stat().st_size > 1000
    metrics = json.loads((auto_run / "phase1" / "metrics.json").read_text())
    assert metrics["lr"] == finding["suggestion"] and metrics["lr_from"] == "lr-find"
    assert json.loads((auto_run / "config.json").read_text())["phase1"]["lr"] == "auto"
    history = metrics["history"]
    assert history[0]["head_only"] and not any(h.get("head_only") for h in history[1:])
    assert all("val_loss" in h and "val_macro_f1" in h for h in history)
    # the kept epoch is the lowest validation loss; patience 1 never stopped inside the head-only epoch
    best = min(history, key=lambda h: h["val_loss"])
    assert metrics["best_epoch"] == best["epoch"] and len(history) >= 2
    assert (auto_run / "phase2" / "metrics.json").is_file()  # --two-phase after it


def test_lr_auto_trains_as_the_chosen_lr_would(auto_run, tiny_shards, tmp_path):
    from camtrap_fast.cli import main

    lr = json.loads((auto_run / "phase1" / "metrics.json").read_text())["lr"]
    again = tmp_path / "fixed"
    assert main(["train", str(tiny_shards), "--out", str(again), "--epochs", "3", "--patience", "1",
                 "--freeze-epochs", "1", "--monitor", "loss", "--lr", repr(lr), *TINY]) == 0
    first = torch.load(auto_run / "phase1" / "model.pt", weights_only=True)
    second = torch.load(again / "phase1" / "model.pt", weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_resume_refuses_another_freeze(auto_run, tiny_shards, cli):
    code, _, err = cli("train", tiny_shards, "--out", auto_run, "--resume", "--two-phase", "--epochs", "3",
                       "--patience", "1", "--freeze-epochs", "2", "--monitor", "loss", "--lr", "auto",
                       "--head-epochs", "2", *TINY)
    assert code == 2 and "--freeze-epochs 1 in the run, 2 now" in err


def test_eval_first_frames_beside_all_frames(auto_run, tiny_shards, cli):
    from camtrap_fast.shards.manifest import load_manifest

    code, out, err = cli("eval", auto_run, "--frames", "first")
    assert code == 0, err
    index = load_manifest(tiny_shards).load_index("test")
    keys, sequences = index.keys(), index.sequences()
    # whole frames named ..._fN: the first frame of a sequence is its smallest frame number
    first = {}
    for key, seq in zip(keys, sequences):
        number = int(key.rsplit("_f", 1)[1])
        first[seq] = min(first.get(seq, (number, key)), (number, key))
    expected = {key for _, key in first.values()}
    metrics = json.loads((auto_run / "eval-test" / "first-frames" / "metrics.json").read_text())
    with open(auto_run / "eval-test" / "first-frames" / "predictions.csv", newline="") as f:
        assert {r["key"] for r in csv.DictReader(f)} == expected
    assert metrics["num_samples"] == len(expected) < len(keys) and metrics["frames_ordered_by"]["frame_num"] > 0
    assert f"{len(expected)} first-frame predictions" in out
    assert json.loads((auto_run / "eval-test" / "metrics.json").read_text())["num_samples"] == len(keys)


def test_lr_find_command(tiny_shards, tmp_path, cli):
    code, out, err = cli("lr-find", tiny_shards, "--out", tmp_path / "lr", "--iterations", "30", *TINY)
    assert code == 0, err
    assert "lr-find: suggested lr" in out and (tmp_path / "lr" / "lr_find.png").is_file()
    assert cli("lr-find", tiny_shards, "--out", tmp_path / "lr", "--iterations", "30", *TINY)[0] == 0  # its own files
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "lr_find.json").write_text("{}")
    code, _, err = cli("lr-find", tiny_shards, "--out", tmp_path / "other", *TINY)
    assert code == 2 and "was not written by lr-find" in err


def test_study_loss_grid_with_first_frames(tiny_shards, tmp_path, cli):
    args = ["study", tiny_shards, "--out", tmp_path / "s", "--regime", "none", "--seeds", "0", "--loss", "ce",
            "--loss", "sigmoid-focal:alpha=0.25,gamma=1", "--methods", "retrain", "--epochs", "1", "--frames", "first",
            *TINY]
    code, out, err = cli(*args)
    assert code == 0, err
    table = (tmp_path / "s" / "table_focal.md").read_text()
    assert "| Classes | ce | sigmoid-focal:alpha=0.25,gamma=1 |" in table
    assert "first frame of each sequence only" in table and table.count("| Total accuracy |") == 2
    saved = json.loads((tmp_path / "s" / "study.json").read_text())
    assert saved["losses"] == ["ce", "sigmoid-focal:alpha=0.25,gamma=1"]
    run = tmp_path / "s" / "runs" / "none" / "sigmoid-focal-alpha0.25-gamma1" / "seed-0"
    assert json.loads((run / "config.json").read_text())["loss"]["name"] == "sigmoid-focal"
    # a rerun dropping a loss is refused, naming it; adding one is not (its runs are only trained then)
    dropped = ["study", tiny_shards, "--out", tmp_path / "s", "--regime", "none", "--seeds", "0", "--loss", "ce",
               "--methods", "retrain", "--epochs", "1", *TINY]
    code, _, err = cli(*dropped)
    assert code == 2 and "losses can be added to a study, not removed or changed" in err


def test_a_per_class_alpha_must_name_every_class(tiny_shards, tmp_path, cli):
    code, _, err = cli("train", tiny_shards, "--out", tmp_path / "r", "--loss", "sigmoid-focal", "--focal-alpha",
                       "0.25,0.5", *TINY)
    assert code == 2 and re.search(r"--focal-alpha: 2 values for the \d+ classes of", err) and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
