"""StudyScores -> the study's tables: table.csv (long format), table.md (Tables 1-3 and the phase-2 methods) and,
per model, the appendix's per-species table (species/MODEL.md and .csv).

Deterministic to the byte: fixed precision, rows in the study's order (models as given, phases 1, 2, then the
methods in --methods order; metrics in METRICS order; species by training images, ties by class index), no
timings anywhere.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

from camtrap_fast.report import PER_CLASS_COLUMNS, frequency_order
from camtrap_fast.study.collect import METRICS, Model, StudyScores
from camtrap_fast.study.stats import mean, sample_std

CSV_COLUMNS = ("regime", "phase", "metric", "mean", "std", "seeds")
DASH = "–"


def summarize(values: Sequence[float | None]) -> tuple[float, float | None, int] | None:
    """(mean, sample std or None, seeds) over the defined values; None when no seed has one."""
    defined = [float(v) for v in values if v is not None]
    if not defined:
        return None
    return mean(defined), sample_std(defined), len(defined)


def table_csv(scores: StudyScores) -> str:
    """regime,phase,metric,mean,std,seeds: one row per model, phase and metric defined at any seed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for model in scores.models:
        for phase in scores.phases(model):
            for metric in METRICS:
                summary = summarize(scores.values(model.label, phase, metric))
                if summary is None:
                    continue
                centre, std, seeds = summary
                writer.writerow([model.label, phase, metric, f"{centre:.6f}", "" if std is None else f"{std:.6f}",
                                 seeds])
    return buffer.getvalue()


def cell(values: Sequence[float | None], digits: int = 3) -> str:
    """mean ± std (the mean alone at one seed; a dash when undefined)."""
    summary = summarize(values)
    if summary is None:
        return DASH
    centre, std, _ = summary
    return f"{centre:.{digits}f}" if std is None else f"{centre:.{digits}f} ± {std:.{digits}f}"


def _rows(header: Sequence[str], rows: list[list[str]], left: int = 1) -> str:
    align = ["---"] * left + ["---:"] * (len(header) - left)
    return "".join("| " + " | ".join(line) + " |\n" for line in [list(header), align, *rows])


def _by_phase(scores: StudyScores, model: Model, phase: str, metric: str) -> str:
    return cell(scores.values(model.label, phase, metric)) if phase in model.phases else DASH


def table_md(scores: StudyScores, title: str, regime_notes: Sequence[str]) -> str:
    seeds = len(scores.seeds)
    split = scores.split
    parts = [f"# {title}\n\n",
             f"Scores on the {split} split, mean ± sample standard deviation over {seeds} seed"
             f"{'s' if seeds != 1 else ''} ({', '.join(map(str, scores.seeds))}). Phase 1: the model trained on the "
             "regime's epochs (the whole of a baseline run); phase 2: its final layer retrained on the original data "
             "(the study's two-phase training).\n\n"]
    tables = (("Table 1: accuracy and macro F1", [("accuracy", "accuracy"), ("F1", "macro_f1")]),
              ("Table 2: macro precision", [("precision", "macro_precision")]),
              ("Table 3: macro recall", [("recall", "macro_recall")]))
    for heading, columns in tables:
        header = ["Model"] + [f"Phase {p} {name}" for name, _ in columns for p in ("1", "2")]
        rows = [[model.label] + [_by_phase(scores, model, p, metric) for _, metric in columns for p in ("1", "2")]
                for model in scores.models]
        parts += [f"## {heading}\n\n", _rows(header, rows), "\n"]
    if scores.methods:
        header = ["Model", "Phase-2 method", "Accuracy", "Macro precision", "Macro recall", "Macro F1",
                  "Rarest-5 accuracy"]
        rows = [[model.label, method] + [cell(scores.values(model.label, method, metric))
                                         for metric in ("accuracy", "macro_precision", "macro_recall", "macro_f1",
                                                        "rarest_5")]
                for model in scores.models for method in scores.methods]
        parts += ["## Phase-2 methods on each model's cached features\n\n",
                  "Each method fits the final layer on the frozen phase-1 backbone's features (`camtrap-fast heads`): "
                  "on a two-phase model's, the study's order; on the baseline's, Kang et al.'s. `retrain` on a "
                  "two-phase model is its phase 2.\n\n", _rows(header, rows, left=2), "\n"]
    parts += ["## Regimes\n\n", "".join(f"- {note}\n" for note in regime_notes)]
    return "".join(parts)


def species_rows(scores: StudyScores, model: Model, phase: str) -> list[dict]:
    """The appendix's per-species table of one model and phase: summaries per species, most training images first."""
    fields = {name: np.array(scores.per_class(model.label, phase, name), dtype=object)
              for name in ("precision", "recall", "f1")}
    test_counts = [scores.metrics[(model.label, phase)][0]["per_class"][c]["count_test"] for c in scores.classes]
    epochs = scores.epoch_counts[(model.label, phase)]
    rows = []
    for i in frequency_order(np.asarray(scores.train_counts), np.asarray(test_counts)):
        rows.append({"species": scores.classes[i], **{name: list(values[:, i]) for name, values in fields.items()},
                     "count_train": scores.train_counts[i], "count_epoch": None if epochs is None else epochs[i],
                     "count_test": test_counts[i]})
    return rows


def species_md(scores: StudyScores, model: Model) -> str:
    parts = [f"# Per-species scores: {model.label}\n\nMean ± sample standard deviation over {len(scores.seeds)} "
             "seed(s). Count (Train): training images; Count (Epoch): images per training epoch of that phase; "
             "Count (Test): test images.\n\n"]
    for phase in model.phases:
        rows = [[row["species"], cell(row["precision"]), cell(row["recall"]), cell(row["f1"]), str(row["count_train"]),
                 DASH if row["count_epoch"] is None else str(row["count_epoch"]), str(row["count_test"])]
                for row in species_rows(scores, model, phase)]
        parts += [f"## Phase {phase}\n\n", _rows(PER_CLASS_COLUMNS, rows), "\n"]
    return "".join(parts)


def species_csv(scores: StudyScores, model: Model) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["phase", "species", "precision_mean", "precision_std", "recall_mean", "recall_std", "f1_mean",
                     "f1_std", "count_train", "count_epoch", "count_test", "seeds"])
    for phase in model.phases:
        for row in species_rows(scores, model, phase):
            cells, seeds = [], 0
            for name in ("precision", "recall", "f1"):
                summary = summarize(row[name])
                cells += ["", ""] if summary is None else [f"{summary[0]:.6f}",
                                                          "" if summary[1] is None else f"{summary[1]:.6f}"]
                seeds = max(seeds, 0 if summary is None else summary[2])
            writer.writerow([phase, row["species"], *cells, row["count_train"],
                             "" if row["count_epoch"] is None else row["count_epoch"], row["count_test"], seeds])
    return buffer.getvalue()
