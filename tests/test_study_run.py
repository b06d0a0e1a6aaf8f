"""`camtrap-fast study` end to end on the tiny synthetic set: table.csv against the runs' metrics.json, a study
killed (SIGKILL) after its first run and rerun, reruns that are refused, and the seed pairing's premise."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# 2 regimes x 2 seeds, 1 epoch: the baseline and ROS&RUS-5k scaled to the tiny set (ros:7,rus:7, ~360 images/epoch)
STUDY = ["--regime", "none", "--regime", "paper-ros-rus-5k", "--scale-regimes", "--seeds", "0,1", "--epochs", "1",
         "--image-size", "32", "--batch-size", "32", "--workers", "0", "--crop-scale-min", "0.5", "--head-epochs", "3",
         "--backend", "pil", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def study(tiny_shards, tmp_path_factory):
    from camtrap_fast.cli import main

    out = tmp_path_factory.mktemp("study") / "study"
    assert main(["study", str(tiny_shards), "--out", str(out), *STUDY]) == 0
    return out


def _run_dirs(study: Path) -> list[Path]:
    return sorted(study.glob("runs/*/*/seed-*"))


def _metrics_path(run: Path, phase: str) -> Path:
    return run / (f"phase{phase}" if phase in ("1", "2") else f"heads/{phase}") / "metrics.json"


def _value(metrics: dict, metric: str):
    for prefix, key in (("rarest_", "rarest_accuracy"), ("commonest_", "commonest_accuracy")):
        if metric.startswith(prefix):
            return metrics[key][metric[len(prefix):]]
    return metrics[metric]


def test_each_table_row_is_the_mean_and_sample_std_of_its_runs(study):
    rows = _check_table_against_runs(study, seeds=2)
    # the two-phase runs' phase 2 is the study's retrain, which `heads` reproduces on the same cache
    assert [r["mean"] for r in rows if r["regime"] == "paper-ros-rus-5k" and r["phase"] == "2"] == \
        [r["mean"] for r in rows if r["regime"] == "paper-ros-rus-5k" and r["phase"] == "retrain"]


def _check_table_against_runs(study: Path, seeds: int) -> list[dict]:
    """Every row of table.csv recomputed from the runs' metrics.json; returns the rows."""
    with open(study / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["regime", "phase", "metric", "mean", "std", "seeds"]
    runs = {}
    for run in _run_dirs(study):
        marker = json.loads((run / "study.json").read_text())
        runs.setdefault(marker["regime"], []).append(run)
        assert set(marker) == {"regime", "loss", "seed"} and marker["loss"] == "ce"
    assert sorted(runs) == ["none", "paper-ros-rus-5k"] and all(len(v) == seeds for v in runs.values())
    phases = {(r["regime"], r["phase"]) for r in rows}
    methods = ("retrain", "crt", "tau-norm", "lws", "ncm", "logit-adjust", "balanced-softmax")
    assert phases == {("none", p) for p in ("1", *methods)} | {("paper-ros-rus-5k", p) for p in ("1", "2", *methods)}
    for row in rows:
        values = [_value(json.loads(_metrics_path(run, row["phase"]).read_text()), row["metric"])
                  for run in runs[row["regime"]]]
        values = [v for v in values if v is not None]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        assert (row["mean"], row["std"], row["seeds"]) == (f"{mean:.6f}", f"{std:.6f}", str(len(values))), row
    return rows


def test_study_writes_its_tables_figures_and_claims(study):
    table = (study / "table.md").read_text()
    assert "| Model | Phase 1 accuracy | Phase 2 accuracy | Phase 1 F1 | Phase 2 F1 |" in table
    assert "paper-ros-rus-5k → ros:7,rus:7 (caps scaled" in table
    claims = (study / "claims.md").read_text()
    lines = [line for line in claims.splitlines() if line.startswith("- ")]
    assert lines and all(line.endswith(("holds", "does not hold", "inconclusive at 2 seeds")) for line in lines)
    species = (study / "species" / "paper-ros-rus-5k.md").read_text()
    assert "| Species | Precision | Recall | F1-score | Count (Train) | Count (Epoch) | Count (Test) |" in species
    for name in ("f1_change_paper-ros-rus-5k.png", "macro_f1_vs_accuracy.png"):
        assert (study / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((study / "study.json").read_text())
    assert [r["spec"] for r in saved["regimes"]] == ["none", "ros:7,rus:7"] and saved["seeds"] == [0, 1]
    # the baseline got its features cached and every method fitted on them
    baseline = study / "runs" / "none" / "ce" / "seed-0"
    assert sorted(p.name for p in (baseline / "features").glob("*.pt")) == ["test.pt", "train.pt", "val.pt"]
    assert not (baseline / "phase2").exists()


def test_study_killed_after_its_first_run_and_rerun_gives_the_same_table(study, tiny_shards, tmp_path, cli):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "camtrap_fast", "study", str(tiny_shards), "--out", str(out), *STUDY]
    second = out / "runs" / "paper-ros-rus-5k" / "ce" / "seed-0"  # run 2 of 4: seed by seed
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (second / "config.json").exists():  # run 1 finished and run 2 started training
            assert process.poll() is None, "the study ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the group this test started: the study and any workers
        process.wait()
    assert (out / "runs" / "none" / "ce" / "seed-0" / "study.json").is_file()
    assert not (second / "study.json").exists() and not (out / "table.csv").exists()

    code, stdout, _ = cli("study", tiny_shards, "--out", out, *STUDY)
    assert code == 0
    assert "run 1/4 (none seed 0): finished before, skipped" in stdout
    assert "run 2/4 (paper-ros-rus-5k seed 0): resuming two-phase" in stdout
    assert (out / "table.csv").read_bytes() == (study / "table.csv").read_bytes()
    assert (out / "claims.md").read_text().replace(str(out), "") == (study / "claims.md").read_text().replace(
        str(study), "")


def test_rerun_of_a_finished_study_skips_every_run(study, tiny_shards, cli):
    before = (study / "table.csv").read_bytes()
    # workers may change, and the seeds' order: a continued study keeps its own
    code, stdout, _ = cli("study", tiny_shards, "--out", study, *STUDY, "--workers", "1", "--seeds", "1,0")
    assert code == 0 and stdout.count("finished before, skipped") == 4
    assert (study / "table.csv").read_bytes() == before


def test_rerun_with_other_options_is_refused_naming_them(study, tiny_shards, cli):
    code, _, err = cli("study", tiny_shards, "--out", study, *STUDY, "--seeds", "1", "--lr", "0.01")
    assert code == 2
    assert "--seeds 0,1 there, 1 now (seeds can be added to a study, not removed)" in err
    assert "--lr 0.001 there, 0.01 now" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("study", tiny_shards, "--out", study, *STUDY[:2], *STUDY[4:])  # without the second regime
    assert code == 2 and "--regime" in err


def test_seeds_added_to_a_finished_study_train_only_the_new_runs(study, tiny_shards, tmp_path, cli):
    grown = tmp_path / "grown"
    shutil.copytree(study, grown)
    code, stdout, err = cli("study", tiny_shards, "--out", grown, *STUDY, "--seeds", "2,1,0")
    assert code == 0, err
    assert "adding seeds 2 to the study's 0,1" in stdout
    assert stdout.count("finished before, skipped") == 4 and "6 runs (2 trained now, 4 finished before)" in stdout
    assert json.loads((grown / "study.json").read_text())["seeds"] == [0, 1, 2]
    _check_table_against_runs(grown, seeds=3)
    claims = [line for line in (grown / "claims.md").read_text().splitlines() if line.startswith("- ")]
    assert claims and all(line.endswith(("holds", "does not hold", "inconclusive at 3 seeds")) for line in claims)
    # the grown study is now a 3-seed study: the old command, without seed 2, is refused
    code, _, err = cli("study", tiny_shards, "--out", grown, *STUDY)
    assert code == 2 and "--seeds 0,1,2 there, 0,1 now (seeds can be added to a study, not removed)" in err


def test_a_folder_that_is_not_a_study_is_refused(tiny_shards, tmp_path, cli):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    code, _, err = cli("study", tiny_shards, "--out", tmp_path / "other", *STUDY)
    assert code == 2 and "holds no study" in err


def test_same_seed_gives_the_same_initial_weights_in_every_regime(tiny_shards, tmp_path, monkeypatch):
    """The claims pair seed s of one regime with seed s of another; that removes the initialization's noise only if
    the initial weights depend on the seed alone, not on the regime (or on anything drawn before the model)."""
    import torch

    from camtrap_fast.train import training
    from camtrap_fast.train.options import config_from_args

    captured = []
    real_build = training.build_model

    class Built(Exception):
        pass

    def build_and_stop(*args, **kwargs):
        captured.append({k: v.clone() for k, v in real_build(*args, **kwargs).state_dict().items()})
        raise Built  # nothing to train: only the initial weights matter here

    monkeypatch.setattr(training, "build_model", build_and_stop)
    common = {"image_size": 32, "workers": 0, "backend": "pil", "device": "cpu"}
    for sampling, seed in (("none", 3), ("ros:7,rus:7", 3), ("rus:5", 3), ("none", 4)):
        config = config_from_args(tiny_shards, {**common, "sampling": sampling, "seed": seed,
                                                "two_phase": sampling != "none" or None})
        with pytest.raises(Built):
            training.train(config, tmp_path / f"{sampling}-{seed}", progress=False)
    same = [all(torch.equal(captured[0][k], other[k]) for k in captured[0]) for other in captured[1:]]
    assert same == [True, True, False]


def test_decoded_splits_serve_the_backends_bytes_and_decode_once(tiny_shards):
    import numpy as np
    import torch

    from camtrap_fast.pipelines import LoaderConfig, make_loader
    from camtrap_fast.pipelines.decoded import DecodedLoader, DecodedSplits
    from camtrap_fast.shards.manifest import load_manifest

    manifest = load_manifest(tiny_shards)
    config = LoaderConfig(mode="eval", backend="pil", device="cpu", batch_size=16, image_size=32, workers=0)
    store = DecodedSplits()
    size = manifest.splits["val"].samples
    order = np.random.default_rng(0).permutation(size)[: size - 3]  # any order, a partial last batch
    expected = list(make_loader(manifest, "val", config).epoch(order))
    for _ in range(2):  # a second loader (another run) decodes nothing more
        loader = store.make_loader(manifest, "val", config)
        assert isinstance(loader, DecodedLoader)
        got = list(loader.epoch(order))
        assert len(got) == len(expected)
        assert all(torch.equal(a, b) and torch.equal(la, lb) for (a, la), (b, lb) in zip(got, expected))
    assert store.decoded_images == size and store.served_images == 2 * len(order)
    # training loaders, skip_corrupt loaders and splits over the budget are the backend's own
    import dataclasses

    assert not isinstance(store.make_loader(manifest, "val", dataclasses.replace(config, mode="train")), DecodedLoader)
    assert not isinstance(store.make_loader(manifest, "val", dataclasses.replace(config, skip_corrupt=True)),
                          DecodedLoader)
    assert not isinstance(DecodedSplits(budget_bytes=1000).make_loader(manifest, "test", config), DecodedLoader)


def test_a_study_given_where_a_run_belongs_says_where_its_runs_are(study, cli, data_dir):
    photo = data_dir / "edge-cases" / "ocelot.jpg"
    for command in (["heads", study], ["eval", study], ["predict", study, photo, "--out", study / "p.csv"]):
        code, stdout, err = cli(*command)
        assert code == 2 and not stdout, command
        assert err.strip().endswith(f"it is a study: its runs are {study / 'runs' / 'REGIME' / 'LOSS' / 'seed-S'}")
        assert len(err.strip().splitlines()) == 1
    assert not (study / "p.csv").exists()


def test_a_study_whose_first_run_was_refused_starts_again_with_corrected_options(tiny_shards, tmp_path, cli):
    one_run = [*STUDY[:2], *STUDY[4:], "--seeds", "0"]  # the baseline at seed 0
    out = tmp_path / "study"
    code, _, err = cli("study", tiny_shards, "--out", out, *one_run, "--arch", "vit_b_16")  # needs 224 px
    assert code == 2 and "vit_b_16" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["study.json"]  # no run started
    started = time.monotonic()
    code, stdout, err = cli("study", tiny_shards, "--out", out, *one_run)
    assert code == 0, err
    assert "never started a run; starting again with these options" in stdout
    assert json.loads((out / "study.json").read_text())["train"]["model"]["arch"] == "resnet18"
    # the times it prints are this call's (a name once shadowed the study's start time: "elapsed 4h23m")
    durations = [_seconds(elapsed or total) for elapsed, total in re.findall(r"elapsed (\S+),|\) in (\S+);", stdout)]
    assert len(durations) == 2 and all(0 <= d <= time.monotonic() - started + 1 for d in durations), stdout


def _seconds(duration: str) -> int:
    """'1h02m', '3m05s' or '12s' (the study's progress format) in seconds."""
    hours, minutes, seconds = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration).groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)


def test_a_method_refitted_with_another_seed_is_refused_by_the_study(study, tiny_shards, tmp_path, cli):
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    run = copy / "runs" / "none" / "ce" / "seed-1"
    assert cli("heads", run, "--methods", "ncm", "--seed", "7")[0] == 0
    code, _, err = cli("study", tiny_shards, "--out", copy, *STUDY)
    assert code == 2 and f"{run / 'heads' / 'ncm'}: fitted with seed 7, not this run's 1" in err
    assert cli("heads", run, "--methods", "ncm")[0] == 0  # what the message says to do
    code, _, err = cli("study", tiny_shards, "--out", copy, *STUDY)
    assert code == 0, err
    assert (copy / "table.csv").read_bytes() == (study / "table.csv").read_bytes()
