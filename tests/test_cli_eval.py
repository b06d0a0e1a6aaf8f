"""`camtrap-fast eval`: predictions CSV -> metrics directory; one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import sys
import types

import pytest

from camtrap_fast.cli import main


def write_csv(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_class_names(tmp_path, capsys):
    rows = [("zebra", "zebra"), ("zebra", "lion"), ("lion", "lion"), ("civet", "lion")]
    predictions = write_csv(tmp_path / "p.csv", ["true", "predicted"], rows)
    code, out, err = run(capsys, "eval", "--predictions", predictions, "--out", tmp_path / "m")
    assert code == 0, err
    assert "accuracy 0.5000" in out
    data = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert list(data["per_class"]) == ["civet", "lion", "zebra"]  # inferred names, sorted
    assert data["accuracy"] == 0.5 and data["per_class"]["zebra"]["count_test"] == 2
    with (tmp_path / "m" / "per_class.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header == ["Species", "Precision", "Recall", "F1-score", "Count (Train)", "Count (Epoch)", "Count (Test)"]
    assert (tmp_path / "m" / "confusion_matrix.png").stat().st_size > 1000
    assert not (tmp_path / "m" / "predictions.csv").exists()


def test_indices_with_classes_keys_confidence_and_train_counts(tmp_path, capsys):
    rows = [("a.jpg", 0, 0, 0.9), ("b.jpg", 1, 0, 0.4), ("c.jpg", 2, 2, 0.8)]
    predictions = write_csv(tmp_path / "p.csv", ["key", "true", "predicted", "confidence"], rows)
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps({"train": {"wildebeest": 100, "zebra": 50, "civet": 2}}))
    code, _, err = run(capsys, "eval", "--predictions", predictions, "--out", tmp_path / "m",
                       "--classes", "wildebeest,zebra,civet", "--train-counts", counts)
    assert code == 0, err
    data = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert data["per_class"]["civet"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "count_train": 2, "count_test": 1}
    assert data["rarest_accuracy"]["2"] == 0.5
    with (tmp_path / "m" / "predictions.csv").open() as handle:
        assert list(csv.reader(handle))[2] == ["b.jpg", "zebra", "wildebeest", "0.4"]


def test_indices_without_classes(tmp_path, capsys):
    predictions = write_csv(tmp_path / "p.csv", ["predicted", "true"], [(0, 0), (3, 1)])
    assert run(capsys, "eval", "--predictions", predictions, "--out", tmp_path / "m")[0] == 0
    assert list(json.loads((tmp_path / "m" / "metrics.json").read_text())["per_class"]) == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    "header, rows, extra, message",
    [
        (["true", "guess"], [("a", "b")], [], "missing column 'predicted'"),
        (["true", "predicted"], [("lion", "1")], [], "mix class names and integer indices"),
        (["true", "predicted"], [("lion", "tiger")], ["--classes", "lion,zebra"], "unknown class 'tiger'"),
        (["true", "predicted"], [("0", "5")], ["--classes", "lion,zebra"], "class index 5 is outside 0..1"),
        (["true", "predicted"], [], [], "no predictions"),
        (["true", "predicted", "confidence"], [("a", "a", "high")], [], "confidence 'high'"),
        (["true", "predicted"], [("a", "a", "extra")], [], "row 2 has 3 fields"),
        (["true", "predicted"], [("a", "a")], ["--classes", "a,,b"], "distinct, non-empty"),
    ],
)
def test_bad_predictions_are_one_line_errors(tmp_path, capsys, header, rows, extra, message):
    predictions = write_csv(tmp_path / "p.csv", header, rows)
    code, out, err = run(capsys, "eval", "--predictions", predictions, "--out", tmp_path / "m", *extra)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("camtrap-fast eval: error: ") and message in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--predictions", "missing.csv", "--out", "m"], "no such predictions file"),
        ([], "give either a run directory"),
        (["run", "--predictions", "p.csv", "--out", "m"], "not both or neither"),
        (["--predictions", "p.csv"], "needs --out"),
        (["run", "--out", "m"], "--out only apply with --predictions"),
        (["--predictions", "p.csv", "--out", "m", "--split", "val"], "--split only applies"),
        (["--predictions", "p.csv", "--out", "m", "--frames", "first"], "--frames only applies"),
    ],
)
def test_bad_arguments(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "eval", *args)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_run_directory_calls_the_train_module(tmp_path, capsys, monkeypatch):
    calls = []
    fake = types.ModuleType("camtrap_fast.train")
    metrics = {"num_samples": 3, "num_classes": 2, "phase": 2, "accuracy": 0.5, "macro_f1": 0.25, "skipped_corrupt": 0}

    def evaluate_run(run_dir, split, device, shards, skip_corrupt, aggregate, frames):
        calls.append((run_dir, split, device, shards, skip_corrupt, aggregate, frames))
        return types.SimpleNamespace(out=run_dir / f"eval-{split}", metrics=metrics, sequences=None,
                                     first_frames=None)

    fake.evaluate_run = evaluate_run
    import camtrap_fast.train.run_paths  # noqa: F401 (eval's light check, imported before the fake package)

    monkeypatch.setitem(sys.modules, "camtrap_fast.train", fake)
    (tmp_path / "config.json").write_text("{}")  # what eval checks before importing the train package
    (tmp_path / "s").mkdir()  # --shards must be a folder (checked the same way)
    code, out, _ = run(capsys, "eval", tmp_path, "--split", "val")
    assert code == 0 and f"split val, phase 2: accuracy 0.5000, macro F1 0.2500 -> {tmp_path / 'eval-val'}" in out
    assert run(capsys, "eval", tmp_path, "--skip-corrupt", "--shards", tmp_path / "s")[0] == 0
    assert run(capsys, "eval", tmp_path, "--frames", "first")[0] == 0
    assert calls == [(tmp_path, "val", "auto", None, False, "none", "all"),
                     (tmp_path, "test", "auto", tmp_path / "s", True, "none", "all"),
                     (tmp_path, "test", "auto", None, False, "none", "first")]


def test_eval_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, _, err = run(capsys, "eval", tmp_path)
    assert code == 2 and "not a camtrap-fast training run (no config.json)" in err and err.count("\n") == 1
