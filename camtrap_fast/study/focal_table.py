"""STUDY/table_focal.md: the focal-loss study's Table II (Goldsworthy & Matam), one column per loss.

Its rows are the accuracy of the 2, 5 and 10 rarest classes (its classes 19-20, 16-20 and 11-20 of 20, ranked by
training images) and of the 5 and 10 commonest (classes 1-5, 1-10), then macro F1 and total accuracy. Here the
ranking is metrics.py's: the classes that have test images, by training images (ties by class index), so with
K such classes the rarest 2 are classes K-1..K. Each cell: mean ± sample std over seeds of the model the study
reports (phase 2 of a two-phase run, the baseline's phase 1); one table per regime.
"""

from __future__ import annotations

from camtrap_fast.study.collect import Model, StudyScores
from camtrap_fast.study.tables import _rows, cell

# (metric, rows counted from the rarest end (True) or the commonest (False), k)
ROWS = (("rarest_2", True, 2), ("rarest_5", True, 5), ("rarest_10", True, 10), ("commonest_5", False, 5),
        ("commonest_10", False, 10), ("macro_f1", None, None), ("accuracy", None, None))


def ranked_classes(scores: StudyScores) -> int:
    """K: the classes the rarest/commonest accuracies rank (those with test images)."""
    model = scores.models[0]
    first = scores.metrics[(model.label, model.final_phase)][0]
    return sum(1 for c in scores.classes if first["per_class"][c]["count_test"] > 0)


def row_label(metric: str, rarest: bool | None, k: int | None, ranked: int) -> str:
    if rarest is None:
        return "F1 (macro)" if metric == "macro_f1" else "Total accuracy"
    if rarest:
        return f"Classes {max(ranked - k + 1, 1)}–{ranked} ({k} rarest)"
    return f"Classes 1–{min(k, ranked)} ({k} commonest)"


def table_focal_md(scores: StudyScores, title: str, first_frames: tuple[StudyScores, str] | None = None) -> str:
    """first_frames: the same models scored on the first frame of each sequence alone (study.first_frames) and
    what was chosen; each regime's table is then followed by its first-frame table."""
    ranked = ranked_classes(scores)
    seeds = len(scores.seeds)
    parts = [f"# {title}: the focal-loss study's Table II\n\n",
             f"Accuracy of the rarest and commonest classes (ranked by training images among the {ranked} classes "
             f"with {scores.split} images; class 1 the commonest), macro F1 and total accuracy on the {scores.split} "
             f"split, mean ± sample standard deviation over {seeds} seed{'s' if seeds != 1 else ''} "
             f"({', '.join(map(str, scores.seeds))}). Each column is one --loss; the model is the one the study "
             "reports (phase 2 of a two-phase run, the baseline's phase 1).\n\n"]
    by_regime: dict[str, list[Model]] = {}
    for model in scores.models:
        by_regime.setdefault(model.regime.name, []).append(model)
    for regime, models in by_regime.items():
        phase = models[0].final_phase
        parts += [f"## Regime {regime} (phase {phase})\n\n", _table(scores, models, ranked), "\n"]
        if first_frames is not None:
            subset, chosen = first_frames
            parts += [f"### Regime {regime}, first frame of each sequence only\n\n",
                      f"The same models on {chosen} (later frames of a burst keep the event's label after the animal "
                      f"left); classes ranked among the {ranked_classes(subset)} with first-frame images.\n\n",
                      _table(subset, models, ranked_classes(subset)), "\n"]
    return "".join(parts)


def _table(scores: StudyScores, models: list[Model], ranked: int) -> str:
    header = ["Classes"] + [model.loss for model in models]
    rows = [[row_label(metric, rarest, k, ranked)] + [cell(scores.values(m.label, m.final_phase, metric))
                                                      for m in models]
            for metric, rarest, k in ROWS]
    return _rows(header, rows)
