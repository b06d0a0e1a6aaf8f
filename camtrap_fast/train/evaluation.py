"""Scoring a model on a split and writing its report: for each phase of a run, and for `eval RUN` later."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from camtrap_fast.devices import resolve_device
from camtrap_fast.errors import UserError
from camtrap_fast.metrics import compute_metrics
from camtrap_fast.pipelines import make_loader
from camtrap_fast.report import read_metrics, write_report
from camtrap_fast.train.loops import predict
from camtrap_fast.train.rundir import Run


def write_phase_report(out_dir: Path, y_true, y_pred, confidence, keys, classes, train_counts, extra: dict) -> dict:
    """metrics.json, per_class.csv, predictions.csv and the confusion matrix in `out_dir`; returns metrics.json."""
    metrics = compute_metrics(y_true, y_pred, classes, train_counts=train_counts)
    predictions = [(k, classes[t], classes[p], float(c)) for k, t, p, c in zip(keys, y_true, y_pred, confidence)]
    write_report(out_dir, metrics, classes, train_counts=train_counts, predictions=predictions, extra=extra)
    return read_metrics(out_dir)


def headline(metrics: dict) -> dict:
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def evaluate_run(run_dir, split: str = "test", device: str = "auto", shards: Path | None = None) -> Path:
    """Re-evaluate a finished run's final model on a split of its shards; reports go to RUN/eval-<split>/."""
    run = Run(Path(run_dir))
    model, config, classes = run.load_model(resolve_device(device))
    manifest = run.manifest(shards)
    if split not in manifest.splits or not manifest.splits[split].samples:
        raise UserError(f"{manifest.root}: split '{split}' has no samples")
    loader_config = config.loader.for_mode("eval", config.phase1.batch_size, str(next(model.parameters()).device))
    loader = make_loader(manifest, split, loader_config)
    y_true, y_pred, conf = predict(model.__call__, loader, manifest.splits[split].samples, loader.device)
    counts = np.asarray(list(manifest.splits["train"].class_counts.values()), dtype=np.int64)
    out = run.eval_dir(split)
    write_phase_report(out, y_true, y_pred, conf, manifest.load_index(split).keys(), classes, counts,
                       {"split": split, "model": str(run.model_path(run.final_phase()))})
    return out
