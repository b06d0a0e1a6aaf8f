"""StudyScores -> the study's figures, with error bars across seeds (matplotlib's object API, as `report`).

    figures/f1_change_MODEL.png     per species, most training images first: the two-phase model's F1 minus the
                                    baseline's, and phase 2 minus phase 1 (the study's Fig. 1 and 7-10); bars are
                                    the mean over seeds of the per-seed differences, error bars their sample std
    figures/macro_f1_vs_accuracy.png   every model's phase 1 and phase 2: mean ± std of macro F1 against accuracy
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from camtrap_fast.atomic import write_bytes
from camtrap_fast.study.collect import Model, StudyScores


def _save(figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return write_bytes(path, buffer.getvalue())


def _per_class_change(scores: StudyScores, a: Model, phase_a: str, b: Model, phase_b: str):
    """(mean, sample std) over seeds of F1(a) - F1(b), per class; NaN where a seed lacks a defined F1."""
    fa = np.array(scores.per_class(a.label, phase_a, "f1"), dtype=float)  # None -> nan
    fb = np.array(scores.per_class(b.label, phase_b, "f1"), dtype=float)
    change = fa - fb
    counts = np.sum(~np.isnan(change), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(counts > 0, np.nansum(change, axis=0) / np.maximum(counts, 1), np.nan)
        spread = np.sqrt(np.where(counts > 1, np.nansum((change - centre) ** 2, axis=0) / np.maximum(counts - 1, 1),
                                  np.nan))
    return centre, spread


def plot_f1_change(path: Path, scores: StudyScores, model: Model, baseline: Model | None) -> Path:
    from matplotlib.figure import Figure

    series = []
    if baseline is not None:
        series.append((f"two-phase − {baseline.label}", *_per_class_change(scores, model, "2", baseline,
                                                                            baseline.final_phase)))
    series.append(("phase 2 − phase 1", *_per_class_change(scores, model, "2", model, "1")))
    counts = np.asarray(scores.train_counts, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    n = len(scores.classes)
    width = 0.8 / len(series)
    figure = Figure(figsize=(min(max(6.0, 0.28 * n + 2.0), 30.0), 5.0), layout="constrained")
    ax = figure.subplots()
    positions = np.arange(n)
    for j, (label, centre, spread) in enumerate(series):
        ax.bar(positions + (j - (len(series) - 1) / 2) * width, centre[order], width, label=label,
               yerr=np.nan_to_num(spread[order]), capsize=1.5, error_kw={"elinewidth": 0.7})
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(positions, [f"{scores.classes[i]} ({counts[i]})" for i in order], rotation=90,
                  fontsize=8 if n <= 30 else 6)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_xlabel("species (training images), most to least frequent")
    ax.set_ylabel(f"change in F1 (mean ± std over {len(scores.seeds)} seeds)")
    ax.set_title(f"Per-species F1 change: {model.label}")
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def _mean_std(values) -> tuple[float, float]:
    values = np.asarray([v for v in values if v is not None], dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def plot_summary(path: Path, scores: StudyScores) -> Path:
    """Macro F1 against accuracy: a marker per model and phase (circle phase 1, square phase 2), joined by a line."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = figure.subplots()
    colors = [f"C{i % 10}" for i in range(len(scores.models))]
    for model, color in zip(scores.models, colors):
        points = []
        for phase, marker in zip(model.phases, ("o", "s")):
            (x, dx), (y, dy) = (_mean_std(scores.values(model.label, phase, m)) for m in ("accuracy", "macro_f1"))
            ax.errorbar(x, y, xerr=dx, yerr=dy, fmt=marker, color=color, capsize=3, markersize=7,
                        label=f"{model.label}, phase {phase}")
            points.append((x, y))
        if len(points) == 2:
            ax.plot(*zip(*points), color=color, linewidth=0.8, alpha=0.6)
    ax.set_xlabel("accuracy")
    ax.set_ylabel("macro F1")
    ax.set_title(f"Macro F1 against accuracy, mean ± std over {len(scores.seeds)} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(figure, path)
