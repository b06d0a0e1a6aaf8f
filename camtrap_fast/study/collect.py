"""A finished study's runs -> StudyScores: every metrics.json, by model, phase and seed, read once.

Phases: "1" (RUN/phase1: the baseline, or phase 1 of a two-phase run), "2" (RUN/phase2: the study's phase 2,
retrain, two-phase runs only), then each phase-2 method `heads` fitted on the run's cached features
(RUN/heads/METHOD). Everything the tables, figures and claims show comes from here, so it depends on the runs'
metrics alone: never on timings, never on which runs were trained in this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.report import read_metrics
from camtrap_fast.study.config import Regime, StudyConfig, StudyRun
from camtrap_fast.study.loss_spec import loss_slug

# table.csv's metrics, in its order; rarest_k / commonest_k are metrics.json's rarest_accuracy / commonest_accuracy.
METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "rarest_2", "rarest_5", "rarest_10",
           "commonest_2", "commonest_5", "commonest_10")


def metric_value(metrics: dict, name: str) -> float | None:
    """One of METRICS from a metrics.json; None when undefined (fewer than k classes have test images)."""
    for prefix, key in (("rarest_", "rarest_accuracy"), ("commonest_", "commonest_accuracy")):
        if name.startswith(prefix):
            return (metrics.get(key) or {}).get(name[len(prefix):])
    return metrics[name]


@dataclass(frozen=True)
class Model:
    label: str
    regime: Regime
    loss: str

    @property
    def phases(self) -> tuple[str, ...]:
        return ("1", "2") if self.regime.two_phase else ("1",)

    @property
    def slug(self) -> str:
        """File names of the model's tables and figures."""
        return self.regime.slug if self.label == self.regime.name else f"{self.regime.slug}-{loss_slug(self.loss)}"

    @property
    def final_phase(self) -> str:
        """The model the study reports: phase 2 of a two-phase run, the baseline's phase 1."""
        return self.phases[-1]


@dataclass(frozen=True, eq=False)
class StudyScores:
    """metrics[(label, phase)]: the metrics.json of each seed, in `seeds` order. classes and train_counts are the
    shards' (the same for every run); epoch_counts[(label, phase)]: images per class in one epoch (None if unknown)."""

    models: tuple[Model, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    classes: tuple[str, ...]
    train_counts: tuple[int, ...]
    metrics: dict[tuple[str, str], tuple[dict, ...]]
    epoch_counts: dict[tuple[str, str], tuple[int, ...] | None]

    @property
    def split(self) -> str:
        """The split every score is on: test, or val when the shards have no test split."""
        return self.metrics[(self.models[0].label, "1")][0].get("split", "test")

    def phases(self, model: Model) -> tuple[str, ...]:
        return model.phases + self.methods

    def values(self, label: str, phase: str, metric: str) -> list[float | None]:
        """One metric per seed (None where undefined)."""
        return [metric_value(m, metric) for m in self.metrics[(label, phase)]]

    def per_class(self, label: str, phase: str, field: str) -> list[list[float | None]]:
        """[seed][class] of a per-class field (precision, recall, f1), in class order."""
        return [[m["per_class"][c][field] for c in self.classes] for m in self.metrics[(label, phase)]]


def _seed_metrics(run: StudyRun, phase: str) -> dict:
    """A run's metrics of `phase`, refused when a method was refitted with another seed than the run's (`heads
    --seed`): the claims pair runs by seed, and that pairing must hold for every number."""
    directory = phase_dir(run, phase)
    metrics = read_metrics(directory)
    if metrics.get("seed", run.seed) != run.seed:
        raise UserError(f"{directory}: fitted with seed {metrics['seed']}, not this run's {run.seed} (`heads --seed` "
                        f"since the study?); refit it with `camtrap-fast heads {run.root} --methods {phase}`")
    return metrics


def phase_dir(run: StudyRun, phase: str) -> Path:
    if phase in ("1", "2"):
        return run.root / f"phase{phase}"
    return run.root / "heads" / phase


def collect(config: StudyConfig) -> StudyScores:
    runs = {(run.label, run.seed): run for run in config.runs()}
    models = tuple(Model(label, regime, loss) for label, regime, loss in config.models())
    metrics, epoch_counts = {}, {}
    classes = train_counts = None
    for model in models:
        for phase in model.phases + config.methods:
            per_seed = tuple(_seed_metrics(runs[(model.label, seed)], phase) for seed in config.seeds)
            metrics[(model.label, phase)] = per_seed
            first = per_seed[0]
            if classes is None:
                classes = tuple(first["per_class"])
                train_counts = tuple(int(first["per_class"][c]["count_train"]) for c in classes)
            epochs = first.get("epoch_images_per_class")
            epoch_counts[(model.label, phase)] = None if epochs is None else tuple(int(epochs[c]) for c in classes)
    return StudyScores(models, config.methods, config.seeds, classes, train_counts, metrics, epoch_counts)
