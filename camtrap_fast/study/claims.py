"""StudyScores -> claims.md: each claim of the study, as a paired difference over seeds with a 95 % interval and a
verdict (study.stats: paired t, and why).

The claims, in the study's words (Malik et al. 2021, abstract and results): two-phase training improves macro F1
(minority classes) with limited loss of accuracy; phase 2 recovers the accuracy phase 1 lost to rebalancing and
beats rebalancing alone; the best two-phase model (ROS&RUS) beats the baseline; combining ROS and RUS beats
either alone; two-phase RUS raises the per-class F1 of the classes with non-zero F1 (by up to 3.0 %).
Each is checked within one loss: a model is compared with the baseline and the regimes of its own loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from camtrap_fast.study.collect import Model, StudyScores
from camtrap_fast.study.stats import Paired, mean, paired, verdict

# "Limited loss of accuracy": two-phase accuracy at most this far below the baseline's (2 percentage points).
LITTLE_LOSS = 0.02


@dataclass(frozen=True)
class Claim:
    subject: str  # which models: "paper-ros", "paper-ros-rus-15k vs paper-ros"
    metric: str
    comparison: str  # "phase 2 − phase 1"
    result: Paired
    threshold: float = 0.0

    @property
    def verdict(self) -> str:
        return verdict(self.result, self.threshold)

    def line(self) -> str:
        r = self.result
        seeds = ", ".join(map(_signed, r.differences))
        if r.low is not None:
            interval = f"95 % CI [{_signed(r.low)}, {_signed(r.high)}]"
        else:
            interval = "no interval at 1 seed" if r.seeds == 1 else "no interval: every seed gave the same difference"
        bar = "" if self.threshold == 0 else f" (claimed: above {_signed(self.threshold)})"
        return (f"- {self.subject}: {self.metric}, {self.comparison} = {_signed(r.mean)} (per seed {seeds}), "
                f"{interval}{bar}: {self.verdict}")


def _signed(value: float) -> str:
    return f"{round(value, 3) + 0.0:+.3f}"  # + 0.0: a difference that rounds to zero reads +0.000, never -0.000


@dataclass(frozen=True)
class Section:
    statement: str
    claims: tuple[Claim, ...]
    unchecked: str | None = None  # why there is nothing to check (a regime the claim needs is not in the study)


def _differences(a: Sequence[float | None], b: Sequence[float | None]) -> list[float]:
    """a - b per seed, over the seeds where both are defined."""
    return [x - y for x, y in zip(a, b) if x is not None and y is not None]


def _compare(scores: StudyScores, a: Model, phase_a: str, b: Model, phase_b: str, metric: str, name: str,
             comparison: str, threshold: float = 0.0, subject: str | None = None) -> Claim | None:
    diffs = _differences(scores.values(a.label, phase_a, metric), scores.values(b.label, phase_b, metric))
    if not diffs:
        return None
    return Claim(subject or a.label, name, comparison, paired(diffs), threshold)


def nonzero_f1_difference(scores: StudyScores, a: Model, b: Model) -> list[float]:
    """Per seed: the mean over classes of F1(a's phase 2) - F1(b's final phase), over the classes whose F1 is
    non-zero in at least one of the two (a class both miss entirely says nothing about either)."""
    diffs = []
    for fa, fb in zip(scores.per_class(a.label, "2", "f1"), scores.per_class(b.label, b.final_phase, "f1")):
        kept = [x - y for x, y in zip(fa, fb) if x is not None and y is not None and (x > 0 or y > 0)]
        if kept:
            diffs.append(mean(kept))
    return diffs


def pick_best(scores: StudyScores, two_phase: Sequence[Model]) -> tuple[Model, str]:
    """The best two-phase model, and how it was picked. By its mean phase-2 validation macro F1 (each run's kept
    epoch's, from its phase-2 metrics.json), so that the test scores it is then compared on did not choose it;
    where a run has no validation score, or the scores themselves are on val, by those scores, which makes the
    comparison optimistic, and the subject says so."""
    def validation(model: Model) -> list[float] | None:
        values = [metrics.get("val_macro_f1") for metrics in scores.metrics[(model.label, "2")]]
        return values if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) else None

    on_val = {model.label: validation(model) for model in two_phase}
    if scores.split == "test" and all(values is not None for values in on_val.values()):
        best = max(two_phase, key=lambda model: mean(on_val[model.label]))
        return best, "the best here by mean phase-2 validation macro F1, scored on test"
    best = max(two_phase, key=lambda model: mean([v for v in scores.values(model.label, "2", "macro_f1")]))
    return best, f"the best here by mean phase-2 macro F1 on {scores.split}; picked on these same scores, so optimistic"


def check_claims(scores: StudyScores) -> list[Section]:
    sections: dict[str, list[Claim]] = {}
    missing: dict[str, str] = {}
    statements = {
        "recover": "Phase 2 recovers the accuracy phase 1 lost to rebalancing",
        "beats-phase1": "Two-phase training beats rebalancing alone (its phase 1) on macro F1 "
                        "(the study: by 6.1 % on average)",
        "f1": "Two-phase training improves macro F1 (the minority classes) over the baseline",
        "accuracy": f"Two-phase training costs little accuracy: at most {LITTLE_LOSS:.2f} below the baseline's",
        "best": "The best two-phase model beats the baseline on macro F1 (the study's best: ROS&RUS)",
        "combined": "Combining ROS and RUS beats ROS alone and RUS alone (two-phase models, macro F1)",
        "rus": "Two-phase RUS raises per-class F1 over the baseline for the classes with non-zero F1 "
               "(the study: by up to 3.0 %)",
    }
    for key in statements:
        sections[key] = []
    by_loss: dict[str, list[Model]] = {}
    for model in scores.models:
        by_loss.setdefault(model.loss, []).append(model)
    for loss, models in by_loss.items():
        baseline = next((m for m in models if m.regime.kind == "baseline"), None)
        two_phase = [m for m in models if m.regime.two_phase]
        of_kind = {kind: [m for m in two_phase if m.regime.kind == kind] for kind in ("ros", "rus", "ros+rus")}
        for m in two_phase:
            sections["recover"].append(_compare(scores, m, "2", m, "1", "accuracy", "accuracy", "phase 2 − phase 1"))
            sections["beats-phase1"].append(_compare(scores, m, "2", m, "1", "macro_f1", "macro F1",
                                                     "phase 2 − phase 1"))
            if baseline is not None:
                sections["f1"].append(_compare(scores, m, "2", baseline, "1", "macro_f1", "macro F1",
                                               f"two-phase − {baseline.label}"))
                sections["accuracy"].append(_compare(scores, m, "2", baseline, "1", "accuracy", "accuracy",
                                                     f"two-phase − {baseline.label}", -LITTLE_LOSS))
        if baseline is None:
            for key in ("f1", "accuracy", "best", "rus"):
                missing[key] = "no baseline (`none`) regime in this study"
        elif two_phase:
            best, picked = pick_best(scores, two_phase)
            how = "a ROS&RUS model, as in the study" if best.regime.kind == "ros+rus" else "not a ROS&RUS model"
            sections["best"].append(_compare(
                scores, best, "2", baseline, "1", "macro_f1", "macro F1", f"two-phase − {baseline.label}",
                subject=f"{best.label} ({picked}, {how})"))
        for combined in of_kind["ros+rus"]:
            for alone in of_kind["ros"] + of_kind["rus"]:
                sections["combined"].append(_compare(scores, combined, "2", alone, "2", "macro_f1", "macro F1",
                                                     f"{combined.label} − {alone.label}",
                                                     subject=f"{combined.label} vs {alone.label}"))
        if not of_kind["ros+rus"] or not (of_kind["ros"] or of_kind["rus"]):
            missing["combined"] = "needs a ROS&RUS regime and a ROS or RUS regime"
        if baseline is not None:
            for m in of_kind["rus"]:
                diffs = nonzero_f1_difference(scores, m, baseline)
                if diffs:
                    sections["rus"].append(Claim(m.label, "per-class F1 averaged over classes with non-zero F1",
                                                 f"two-phase − {baseline.label}", paired(diffs)))
            if not of_kind["rus"]:
                missing["rus"] = "no RUS-only regime in this study"
    return [Section(statements[key], tuple(c for c in claims if c is not None),
                    None if any(claims) else missing.get(key, "nothing to compare"))
            for key, claims in sections.items()]


def claims_md(scores: StudyScores, sections: Sequence[Section], title: str) -> str:
    n = len(scores.seeds)
    parts = [f"# {title}\n\n",
             f"Each line: the models compared, the metric, the mean over {n} seed{'s' if n != 1 else ''} of the "
             "per-seed paired differences (seed s of one model minus seed s of the other: a seed fixes the initial "
             "weights, so pairing removes their share of the seed-to-seed spread), the 95 % interval of that mean "
             f"(paired t with N − 1 = {max(n - 1, 0)} degree{'s' if n != 2 else ''} of freedom: exact for normal differences and honestly wide at few "
             "seeds, where a bootstrap's interval is far too narrow), and the verdict: **holds** when the whole "
             "interval is above the claim's threshold (0 unless stated), **does not hold** when it is below, "
             f"**inconclusive at {n} seeds** otherwise (always so without an interval: at 1 seed, or when every seed "
             f"gave the same difference). Scores are on the {scores.split} split.\n\n"]
    for section in sections:
        parts.append(f"## {section.statement}\n\n")
        if section.claims:
            parts.append("".join(claim.line() + "\n" for claim in section.claims))
        else:
            parts.append(f"Not checked: {section.unchecked}.\n")
        parts.append("\n")
    return "".join(parts)
