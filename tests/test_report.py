"""Metrics directory: metrics.json, per_class.csv, predictions.csv, PNG figures."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from matplotlib import image as mpimg

from camtrap_fast.errors import UserError
from camtrap_fast.metrics import Predictions, compute_metrics
from camtrap_fast.report import PER_CLASS_COLUMNS, plot_f1_change, read_metrics, write_report

CLASSES = ["lion", "zebra", "civet", "wildebeest"]
TRAIN = [300, 5000, 4, 48000]
Y_TRUE = np.array([0, 0, 1, 1, 1, 2, 3, 3, 3, 3])
Y_PRED = np.array([0, 1, 1, 1, 3, 0, 3, 3, 1, 3])


def read_csv(path):
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = mpimg.imread(path).shape
    assert height > 100 and width > 100
    return height, width


def test_full_report(tmp_path):
    metrics = compute_metrics(Y_TRUE, Y_PRED, CLASSES, train_counts=TRAIN)
    keys = tuple(f"img{i}" for i in range(len(Y_TRUE)))
    predictions = Predictions(Y_TRUE, Y_PRED, keys, np.linspace(0.5, 0.95, len(Y_TRUE)))
    write_report(tmp_path, metrics, CLASSES, predictions=predictions,
                 extra={"seconds": 12.5, "head": {"best_val_macro_f1": float("nan"), "epochs": np.int64(3)}})

    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["accuracy"] == pytest.approx(0.6) and data["seconds"] == 12.5
    assert data["head"] == {"best_val_macro_f1": None, "epochs": 3}  # strict JSON: no NaN
    assert set(data) >= {"macro_precision", "macro_recall", "macro_f1", "per_class", "rarest_accuracy",
                         "commonest_accuracy"}
    assert data["per_class"]["civet"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "count_train": 4,
                                          "count_test": 1}
    assert read_metrics(tmp_path) == data

    rows = read_csv(tmp_path / "per_class.csv")
    assert tuple(rows[0]) == PER_CLASS_COLUMNS == ("Species", "Precision", "Recall", "F1-score", "Count (Train)",
                                                   "Count (Epoch)", "Count (Test)")
    assert [r[0] for r in rows[1:]] == ["wildebeest", "zebra", "lion", "civet"]  # training count, descending
    assert rows[1][4:] == ["48000", "", "4"] and float(rows[1][2]) == pytest.approx(0.75)

    predictions_rows = read_csv(tmp_path / "predictions.csv")
    assert predictions_rows[0] == ["key", "true", "predicted", "confidence"]
    assert predictions_rows[1] == ["img0", "lion", "lion", "0.5"] and len(predictions_rows) == 11

    assert_png(tmp_path / "confusion_matrix.png")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_without_train_counts_sorts_by_test_count(tmp_path):
    metrics = compute_metrics(Y_TRUE, Y_PRED, CLASSES)
    write_report(tmp_path, metrics, CLASSES, predictions=Predictions(Y_TRUE, Y_PRED))  # no keys: no predictions.csv
    rows = read_csv(tmp_path / "per_class.csv")
    assert [r[0] for r in rows[1:]] == ["wildebeest", "zebra", "lion", "civet"]
    assert all(r[4] == "" for r in rows[1:])
    assert not (tmp_path / "predictions.csv").exists()
    assert "rarest_accuracy" not in json.loads((tmp_path / "metrics.json").read_text())


def test_train_counts_given_to_the_report(tmp_path):
    write_report(tmp_path, compute_metrics(Y_TRUE, Y_PRED, CLASSES), CLASSES, train_counts=TRAIN,
                 predictions=[("a", "lion", "zebra", 0.7)] * 2)
    data = read_metrics(tmp_path)
    assert data["per_class"]["wildebeest"]["count_train"] == 48000 and data["rarest_accuracy"]["2"] is not None
    assert read_csv(tmp_path / "predictions.csv")[1] == ["a", "lion", "zebra", "0.7"]


def test_extra_may_not_overwrite_metrics(tmp_path):
    with pytest.raises(ValueError, match="accuracy"):
        write_report(tmp_path, compute_metrics(Y_TRUE, Y_PRED, CLASSES), extra={"accuracy": 1.0})


def test_confusion_matrix_readable_for_52_classes(tmp_path):
    rng = np.random.default_rng(0)
    classes = [f"species{i:02d}" for i in range(52)]
    y_true = rng.integers(0, 52, 5000)
    y_pred = np.where(rng.random(5000) < 0.7, y_true, rng.integers(0, 52, 5000))
    write_report(tmp_path, compute_metrics(y_true, y_pred, classes, train_counts=rng.integers(1, 10000, 52)))
    height, width = assert_png(tmp_path / "confusion_matrix.png")
    assert height >= 1000 and width >= 1000  # about 20 px per class row


def test_f1_change_plot(tmp_path):
    after, before = [0.8, 0.6, 0.3, 0.9], [0.7, 0.65, 0.1, float("nan")]
    assert_png(plot_f1_change(tmp_path / "f1_change.png", CLASSES, TRAIN, after, before))
    assert_png(plot_f1_change(tmp_path / "f1_change_vs.png", CLASSES, TRAIN, after, before, [0.5, None, 0.2, 0.9]))
    with pytest.raises(ValueError, match="one value per class"):
        plot_f1_change(tmp_path / "bad.png", CLASSES, TRAIN, after, before[:3])


def test_read_metrics_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text("{broken")
    with pytest.raises(UserError, match="cannot read metrics"):
        read_metrics(tmp_path)


def test_epoch_counts_fill_their_own_column(tmp_path):
    metrics = compute_metrics(Y_TRUE, Y_PRED, CLASSES, train_counts=[300, 9000, 4, 48000])
    write_report(tmp_path, metrics, CLASSES, epoch_counts=[3000, 9000, 40, 15000])
    rows = read_csv(tmp_path / "per_class.csv")
    assert [r[0] for r in rows[1:]] == ["wildebeest", "zebra", "lion", "civet"]  # ranked by Count (Train)
    assert rows[1][4:] == ["48000", "15000", "4"] and rows[4][4:] == ["4", "40", "1"]
    with pytest.raises(ValueError, match="epoch counts"):
        write_report(tmp_path, metrics, CLASSES, epoch_counts=[1])
