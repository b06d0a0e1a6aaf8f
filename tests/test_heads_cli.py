"""`camtrap-fast heads RUN` and `train --phase2 METHOD` end to end on a tiny synthetic set (CPU)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from camtrap_fast.train.head_config import PHASE2_METHODS

pytestmark = pytest.mark.slow

TINY = ["--epochs", "2", "--patience", "2", "--image-size", "32", "--batch-size", "32", "--workers", "0",
        "--crop-scale-min", "0.5", "--backend", "pil", "--device", "cpu", "--quiet", "--head-epochs", "6"]
METRIC_FIELDS = ("num_samples", "accuracy", "macro_precision", "macro_recall", "macro_f1", "rarest_accuracy",
                 "commonest_accuracy", "per_class", "best_epoch", "chosen")


@pytest.fixture(scope="module")
def runs(tiny_shards, tmp_path_factory):
    from camtrap_fast.cli import main

    root = tmp_path_factory.mktemp("heads-runs")
    assert main(["train", str(tiny_shards), "--out", str(root / "baseline"), *TINY]) == 0
    assert main(["train", str(tiny_shards), "--out", str(root / "two-phase"), "--two-phase", "--sampling",
                 "ros:20,rus:40", "--seed", "4", *TINY]) == 0
    return root


def _metrics(directory):
    return json.loads((directory / "metrics.json").read_text())


def test_heads_all_on_a_two_phase_run(runs, cli):
    run = runs / "two-phase"
    features_before = {p.name: p.stat().st_mtime_ns for p in (run / "features").iterdir()}
    code, out, err = cli("heads", run, "--methods", "all")
    assert code == 0, err
    assert "features extracted" not in out  # the run's cache is current: nothing decoded
    assert {p.name: p.stat().st_mtime_ns for p in (run / "features").iterdir()} == features_before
    table = out[out.index("scores on test"):].splitlines()
    assert "seed 4" in table[0] and table[1].split()[:5] == ["method", "accuracy", "macro", "P", "macro"]
    assert [line.split()[0] for line in table[2:9]] == list(PHASE2_METHODS)

    heads = run / "heads"
    with open(heads / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == list(PHASE2_METHODS)
    assert list(rows[0])[:5] == ["method", "accuracy", "macro_precision", "macro_recall", "macro_f1"]
    assert "rarest_10" in rows[0] and "commonest_2" in rows[0] and rows[2]["chosen"].startswith("tau ")
    assert (heads / "summary.md").read_text().count("\n| ") == 2 + len(PHASE2_METHODS)  # header, rule, rows
    assert (heads / "f1_by_species.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    classes = json.loads((run / "classes.json").read_text())
    for method, row in zip(PHASE2_METHODS, rows):
        metrics = _metrics(heads / method)
        assert metrics["method"] == method and metrics["split"] == "test" and metrics["seed"] == 4
        assert float(row["macro_f1"]) == pytest.approx(metrics["macro_f1"], abs=1e-6)
        _predictions_agree_with_metrics(heads / method, metrics, classes)
        state = torch.load(heads / method / "head.pt", weights_only=True)
        assert state["weight"].shape == (len(classes), 512) and state["bias"].shape == (len(classes),)
    assert _metrics(heads / "tau-norm")["hyper_parameter"]["tau"] in [round(i * 0.05, 2) for i in range(41)]
    assert _metrics(heads / "crt")["best_epoch"] >= 1 and _metrics(heads / "ncm")["chosen"] == ""


def _predictions_agree_with_metrics(directory, metrics, classes):
    from camtrap_fast.metrics import compute_metrics

    index = {name: i for i, name in enumerate(classes)}
    with open(directory / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == metrics["num_samples"]
    y_true = [index[r["true"]] for r in rows]
    y_pred = [index[r["predicted"]] for r in rows]
    recomputed = compute_metrics(y_true, y_pred, classes).as_dict()
    for field in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
        assert recomputed[field] == metrics[field], field
    assert all(0 < float(r["confidence"]) <= 1 for r in rows)


def test_heads_retrain_reproduces_phase_two_exactly(runs, cli):
    run = runs / "two-phase"
    assert cli("heads", run, "--methods", "retrain")[0] == 0
    phase2, heads = _metrics(run / "phase2"), _metrics(run / "heads" / "retrain")
    assert {k: phase2[k] for k in METRIC_FIELDS} == {k: heads[k] for k in METRIC_FIELDS}
    assert phase2["head_history"] == heads["head_history"]
    for name in ("predictions.csv", "per_class.csv"):
        assert (run / "phase2" / name).read_bytes() == (run / "heads" / "retrain" / name).read_bytes()
    # another seed draws other epochs
    assert cli("heads", run, "--methods", "retrain", "--seed", "5")[0] == 0
    assert _metrics(run / "heads" / "retrain")["head_history"] != phase2["head_history"]
    assert not (run / "heads" / "f1_by_species.png").exists()  # one method: nothing to compare, no stale chart


def test_heads_on_a_baseline_run_extracts_its_features_once(runs, cli):
    run = runs / "baseline"
    assert not (run / "features").exists()
    code, out, err = cli("heads", run, "--methods", "ncm,retrain,tau-norm")
    assert code == 0, err
    assert "features extracted for train, val, test" in out
    assert [line.split()[0] for line in out[out.index("scores on"):].splitlines()[2:5]] == ["ncm", "retrain",
                                                                                            "tau-norm"]
    code, out, _ = cli("heads", run, "--methods", "lws")
    assert code == 0 and "features extracted" not in out
    assert (run / "heads" / "lws" / "metrics.json").is_file()


def test_a_stale_cache_is_never_used(runs, cli):
    run = runs / "baseline"
    path = run / "features" / "val.pt"
    if not path.exists():
        assert cli("heads", run, "--methods", "ncm")[0] == 0
    data = torch.load(path, weights_only=True)
    torch.save({**data, "tag": "another-checkpoint"}, path)
    code, out, err = cli("heads", run, "--methods", "ncm")
    assert code == 0, err
    assert "features extracted for val in" in out  # only the stale split, again
    assert torch.load(path, weights_only=True)["tag"] == data["tag"]


@pytest.mark.parametrize("method", ["lws", "ncm"])
def test_train_phase2_method_is_the_heads_method(tiny_shards, tmp_path, cli, method, data_dir):
    run = tmp_path / method
    code, out, err = cli("train", tiny_shards, "--out", run, "--two-phase", "--phase2", method, *TINY)
    assert code == 0, err
    assert f"fitting the final layer by {method}" in out
    phase2 = _metrics(run / "phase2")
    assert phase2["method"] == method
    assert cli("heads", run, "--methods", method)[0] == 0
    heads = _metrics(run / "heads" / method)
    assert {k: phase2[k] for k in METRIC_FIELDS} == {k: heads[k] for k in METRIC_FIELDS}
    # phase2/model.pt carries the method's folded layer: eval and predict use it unchanged
    model = torch.load(run / "phase2" / "model.pt", weights_only=True)
    head = torch.load(run / "heads" / method / "head.pt", weights_only=True)
    assert torch.equal(model["fc.weight"], head["weight"]) and torch.equal(model["fc.bias"], head["bias"])
    code, out, err = cli("eval", run, "--split", "test")
    assert code == 0, err
    evaluated = _metrics(run / "eval-test")
    assert evaluated["phase"] == 2
    # fp16 cache vs a fresh fp32 backbone pass: the same decisions up to rounding near ties
    assert abs(evaluated["accuracy"] - phase2["accuracy"]) <= 0.05
    with open(run / "eval-test" / "per_class.csv", newline="") as f:
        epoch_column = [r["Count (Epoch)"] for r in csv.DictReader(f)]
    assert all(cell == "" for cell in epoch_column) if method == "ncm" else len(set(epoch_column)) == 1
    code, _, err = cli("predict", run, data_dir / "edge-cases", "--out", tmp_path / "p.csv")
    assert code == 0, err


def test_heads_errors_are_one_line(runs, tmp_path, cli):
    code, _, err = cli("heads", runs / "two-phase", "--methods", "crt,svm")
    assert code == 2 and "--methods crt,svm: unknown method 'svm'" in err and err.count("\n") == 1
    code, _, err = cli("heads", tmp_path)
    assert code == 2 and "not a camtrap-fast training run" in err and err.count("\n") == 1
    code, _, err = cli("train", runs / "x", "--out", tmp_path / "r", "--phase2", "crt")
    assert code == 2 and "--phase2 crt: needs --two-phase" in err


def test_heads_runner_is_a_function_with_typed_rows(runs):
    from camtrap_fast.train.heads.runner import fit_heads
    from camtrap_fast.train.heads.summary import SummaryRow

    result = fit_heads(runs / "two-phase", ("logit-adjust", "retrain"))
    assert [row.method for row in result.rows] == ["logit-adjust", "retrain"]
    assert all(isinstance(row, SummaryRow) for row in result.rows) and result.extracted == ()
    assert result.fits["logit-adjust"].parameter == "tau" and result.chart is not None
    assert np.isfinite([row.macro_f1 for row in result.rows]).all()
