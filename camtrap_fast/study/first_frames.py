"""`study --frames first`: each run's final-model scores on the first frame of each test sequence alone
(shards.frames), from the run's own predictions.csv, so a study trained before first-frame sets existed gets them
too, without running any model again. Nothing is written into the runs: the numbers live in table_focal.md."""

from __future__ import annotations

import csv

import numpy as np

from camtrap_fast.errors import UserError
from camtrap_fast.metrics import compute_metrics
from camtrap_fast.shards.frames import FirstFrames, first_frames, frame_facts
from camtrap_fast.shards.manifest import Manifest
from camtrap_fast.study.collect import StudyScores, phase_dir
from camtrap_fast.study.config import StudyConfig


def first_frame_set(manifest: Manifest, split: str) -> tuple[set[str], FirstFrames]:
    index = manifest.load_index(split)
    chosen = first_frames(index.keys(), index.sequences(), index.sources(), frame_facts(manifest, split),
                          f"{manifest.root / split}")
    keys = index.keys()
    return {keys[i] for i in np.flatnonzero(chosen.mask)}, chosen


def first_frame_scores(config: StudyConfig, scores: StudyScores, manifest: Manifest) -> tuple[StudyScores, str]:
    """StudyScores of each model's final phase on the first frames alone (the same models, seeds and classes),
    and a line saying what was chosen."""
    keep, chosen = first_frame_set(manifest, scores.split)
    runs = {(run.label, run.seed): run for run in config.runs()}
    index = {name: i for i, name in enumerate(scores.classes)}
    metrics = {}
    for model in scores.models:
        per_seed = []
        for seed in scores.seeds:
            path = phase_dir(runs[(model.label, seed)], model.final_phase) / "predictions.csv"
            truth, predicted = _read(path, keep, index)
            per_seed.append(compute_metrics(truth, predicted, scores.classes, scores.train_counts).as_dict())
        metrics[(model.label, model.final_phase)] = tuple(per_seed)
    subset = StudyScores(scores.models, (), scores.seeds, scores.classes, scores.train_counts, metrics,
                         {key: None for key in metrics})
    return subset, chosen.describe()


def _read(path, keep: set[str], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if row["key"] in keep]
        return (np.array([index[r["true"]] for r in rows], dtype=np.int64),
                np.array([index[r["predicted"]] for r in rows], dtype=np.int64))
    except (OSError, KeyError, csv.Error) as error:
        raise UserError(f"{path}: cannot read the run's predictions ({error}); rerun the study to remake it") from None
