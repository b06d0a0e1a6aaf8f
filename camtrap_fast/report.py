"""Metrics -> a metrics directory: metrics.json, per_class.csv, predictions.csv and PNG figures.

Every file is written to a temporary name and renamed into place, so a reader never sees half a file.
Figures use matplotlib's object API (no pyplot), which renders with Agg and touches no global state.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from camtrap_fast.atomic import write_bytes
from camtrap_fast.errors import UserError
from camtrap_fast.metrics import Metrics, Predictions, metrics_from_confusion

# Count (Train): the class's training images as sharded (what rarest/commonest rank by); Count (Epoch): the
# images per epoch it was trained on (a rebalanced phase 1 differs; blank when unknown), as the study's appendix.
PER_CLASS_COLUMNS = ("Species", "Precision", "Recall", "F1-score", "Count (Train)", "Count (Epoch)", "Count (Test)")
PREDICTION_COLUMNS = ("key", "true", "predicted", "confidence")
METRICS_FILE = "metrics.json"
# Cells are annotated with their value only when the matrix is small enough to read them.
MAX_ANNOTATED_CLASSES = 20


def frequency_order(train_counts: np.ndarray | None, test_counts: np.ndarray) -> np.ndarray:
    """Class indices, most training images first (most test images when training counts are unknown);
    ties keep class-index order."""
    counts = test_counts if train_counts is None else train_counts
    return np.argsort(-np.asarray(counts, dtype=np.int64), kind="stable")


def _resolve(metrics: Metrics, class_names: Sequence[str] | None, train_counts) -> Metrics:
    if class_names is not None and tuple(class_names) != metrics.class_names:
        raise ValueError("class_names differ from the metrics' class names; "
                         "pass the names the metrics were computed with")
    if train_counts is None:
        return metrics
    counts = np.asarray(train_counts, dtype=np.int64)
    if metrics.train_counts is not None:
        if not np.array_equal(counts, metrics.train_counts):
            raise ValueError("train_counts differ from the counts the metrics were computed with")
        return metrics
    return metrics_from_confusion(metrics.confusion, metrics.class_names, counts)


def write_report(
    out_dir: str | Path,
    metrics: Metrics,
    class_names: Sequence[str] | None = None,
    train_counts: Sequence[int] | np.ndarray | None = None,
    predictions: Predictions | Iterable[Sequence] | None = None,
    extra: Mapping[str, object] | None = None,
    epoch_counts: Sequence[int] | np.ndarray | None = None,
    confusion_png: bool = True,
) -> Path:
    """Write metrics.json, per_class.csv, confusion_matrix.png and (with keyed predictions) predictions.csv.

    predictions: a Predictions, or rows (key, true class name, predicted class name, confidence).
    epoch_counts: images per class in one training epoch, for the Count (Epoch) column.
    confusion_png: False leaves the figure out (about 2 s of matplotlib at 52 classes on a 2-core VM; `heads`
    writes seven reports and prints its table in seconds).

    extra: more JSON fields for metrics.json (wall-clock seconds, config, environment); they may not
    reuse a metric's name.
    """
    out = Path(out_dir)
    metrics = _resolve(metrics, class_names, train_counts)
    if predictions is not None and not isinstance(predictions, Predictions):
        predictions = predictions_from_rows(predictions, metrics.class_names)
    summary = metrics.as_dict()
    for key, value in (extra or {}).items():
        if key in summary:
            raise ValueError(f"extra field {key!r} would overwrite a metric; rename it")
        summary[key] = _json_safe(value)
    write_bytes(out / METRICS_FILE, (json.dumps(summary, indent=1, allow_nan=False) + "\n").encode())
    write_bytes(out / "per_class.csv", per_class_csv(metrics, epoch_counts).encode())
    if predictions is not None and predictions.keys is not None:
        write_bytes(out / "predictions.csv", predictions_csv(predictions, metrics.class_names).encode())
    if confusion_png:
        plot_confusion_matrix(out / "confusion_matrix.png", metrics)
    return out


def _json_safe(value):
    """NaN and infinities become null (strict JSON has no NaN); numpy scalars and tuples become plain JSON."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def per_class_csv(metrics: Metrics, epoch_counts: Sequence[int] | np.ndarray | None = None) -> str:
    """The study's per-class table, most training images first."""
    if epoch_counts is not None and len(epoch_counts) != len(metrics.class_names):
        raise ValueError(f"{len(epoch_counts)} epoch counts for {len(metrics.class_names)} classes")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PER_CLASS_COLUMNS)
    for i in frequency_order(metrics.train_counts, metrics.support):
        writer.writerow([
            metrics.class_names[i],
            _cell(metrics.precision[i]),
            _cell(metrics.recall[i]),
            _cell(metrics.f1[i]),
            "" if metrics.train_counts is None else int(metrics.train_counts[i]),
            "" if epoch_counts is None else int(epoch_counts[i]),
            int(metrics.support[i]),
        ])
    return buffer.getvalue()


def predictions_from_rows(rows: Iterable[Sequence], class_names: Sequence[str]) -> Predictions:
    """Predictions from (key, true name, predicted name, confidence) rows."""
    index = {name: i for i, name in enumerate(class_names)}
    keys, y_true, y_pred, confidence = [], [], [], []
    for row in rows:
        key, true, predicted, score = row
        for name in (true, predicted):
            if name not in index:
                raise ValueError(f"prediction row for {key!r} names class {name!r}, "
                                 "which is not among the metrics' classes")
        keys.append(str(key))
        y_true.append(index[true])
        y_pred.append(index[predicted])
        confidence.append(float("nan") if score is None else float(score))
    return Predictions(np.array(y_true, dtype=np.int64), np.array(y_pred, dtype=np.int64), tuple(keys),
                       np.array(confidence, dtype=np.float64))


def predictions_csv(predictions: Predictions, class_names: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    names = np.asarray(class_names, dtype=object)
    confidence = predictions.confidence
    if confidence is None:
        scores = [""] * len(predictions.keys)
    else:
        scores = ["" if np.isnan(c) else f"{c:.6g}" for c in confidence]
    writer.writerows(zip(predictions.keys, names[predictions.y_true], names[predictions.y_pred], scores))
    return buffer.getvalue()


def _save_png(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    write_bytes(path, buffer.getvalue())


def plot_confusion_matrix(out_path: str | Path, metrics: Metrics) -> Path:
    """Row-normalized confusion matrix (each row: where that true class's images went), frequent classes first."""
    from matplotlib.figure import Figure

    order = frequency_order(metrics.train_counts, metrics.support)
    confusion = metrics.confusion[np.ix_(order, order)].astype(np.float64)
    rows = confusion.sum(axis=1, keepdims=True)
    normalized = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    names = [metrics.class_names[i] for i in order]
    n = len(names)
    side = min(max(6.0, 0.24 * n + 3.0), 30.0)
    font = 9 if n <= 20 else max(4, 9 - n // 15)
    figure = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(n), names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), names, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (most training images first)" if metrics.train_counts is not None
                  else "true class (most test images first)")
    ax.set_title(f"Confusion matrix, row-normalized (accuracy {metrics.accuracy:.3f}, macro F1 {metrics.macro_f1:.3f})")
    if n <= MAX_ANNOTATED_CLASSES:
        for r in range(n):
            for c in range(n):
                if normalized[r, c] >= 0.005:
                    ax.text(c, r, f"{normalized[r, c]:.2f}", ha="center", va="center", fontsize=font - 1,
                            color="white" if normalized[r, c] > 0.5 else "black")
    figure.colorbar(image, ax=ax, shrink=0.6, label="fraction of the true class")
    _save_png(figure, Path(out_path))
    return Path(out_path)


def plot_f1_change(
    out_path: str | Path,
    class_names: Sequence[str],
    train_counts: Sequence[int] | np.ndarray,
    f1_after: Sequence[float] | np.ndarray,
    f1_before: Sequence[float] | np.ndarray,
    f1_baseline: Sequence[float] | np.ndarray | None = None,
) -> Path:
    """Bar chart of each species' F1 change, phase 2 minus phase 1 (and minus a baseline run when given),
    species ordered from most to least training images. Undefined F1 (NaN) leaves a gap."""
    from matplotlib.figure import Figure

    n = len(class_names)
    given = {"train_counts": train_counts, "f1_after": f1_after, "f1_before": f1_before, "f1_baseline": f1_baseline}
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in given.items() if values is not None}
    for name, values in arrays.items():
        if values.shape != (n,):
            raise ValueError(f"{name} has shape {values.shape}; give one value per class ({n})")
    counts = arrays["train_counts"].astype(np.int64)
    series = [("phase 2 − phase 1", arrays["f1_after"] - arrays["f1_before"])]
    if "f1_baseline" in arrays:
        series.append(("phase 2 − baseline", arrays["f1_after"] - arrays["f1_baseline"]))
    order = np.argsort(-counts, kind="stable")
    width = 0.8 / len(series)
    figure = Figure(figsize=(min(max(6.0, 0.28 * n + 2.0), 30.0), 5.0), layout="constrained")
    ax = figure.subplots()
    positions = np.arange(n)
    for j, (label, values) in enumerate(series):
        ax.bar(positions + (j - (len(series) - 1) / 2) * width, values[order], width, label=label)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(positions, [f"{class_names[i]} ({counts[i]})" for i in order], rotation=90,
                  fontsize=8 if n <= 30 else 6)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("species (training images), most to least frequent")
    ax.set_ylabel("change in F1")
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    _save_png(figure, Path(out_path))
    return Path(out_path)


def plot_f1_by_method(
    out_path: str | Path,
    class_names: Sequence[str],
    train_counts: Sequence[int] | np.ndarray,
    f1_by_method: Mapping[str, Sequence[float] | np.ndarray],
    reference: str,
) -> Path:
    """One panel per method: each species' F1 minus the `reference` method's, species ordered from most to
    least training images (shared x axis, so a species reads down the column). Undefined F1 leaves a gap."""
    from matplotlib.figure import Figure

    n = len(class_names)
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in f1_by_method.items()}
    for name, values in arrays.items():
        if values.shape != (n,):
            raise ValueError(f"F1 of {name} has shape {values.shape}; give one value per class ({n})")
    if reference not in arrays:
        raise ValueError(f"the reference method {reference!r} has no F1 values")
    counts = np.asarray(train_counts, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    others = [name for name in arrays if name != reference]
    rows = max(1, len(others))
    figure = Figure(figsize=(min(max(6.0, 0.28 * n + 2.0), 30.0), 1.0 + 1.7 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, 1, sharex=True, sharey=True))
    positions = np.arange(n)
    for ax, name in zip(axes, others):
        change = (arrays[name] - arrays[reference])[order]
        ax.bar(positions, change, 0.8, color=np.where(change >= 0, "tab:blue", "tab:red"))
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_ylabel(f"{name}\n− {reference}", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(positions, [f"{class_names[i]} ({counts[i]})" for i in order], rotation=90,
                        fontsize=8 if n <= 30 else 6)
    axes[-1].set_xlim(-0.6, n - 0.4)
    axes[-1].set_xlabel("species (training images), most to least frequent")
    figure.suptitle(f"Per-species F1 change against {reference}")
    _save_png(figure, Path(out_path))
    return Path(out_path)


def read_metrics(directory: str | Path) -> dict:
    """metrics.json of a metrics directory, as written by write_report."""
    path = Path(directory) / METRICS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file; is {directory} a metrics directory?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: cannot read metrics ({error})") from None
    if not isinstance(data, dict) or "macro_f1" not in data:
        raise UserError(f"{path}: not a metrics file (no macro_f1 field)")
    return data
