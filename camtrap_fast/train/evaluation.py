"""Scoring a model on a split and writing its report: for each phase of a run, and for `eval RUN` later."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from camtrap_fast.devices import resolve_device
from camtrap_fast.errors import UserError
from camtrap_fast.metrics import compute_metrics
from camtrap_fast.pipelines import make_loader
from camtrap_fast.report import read_metrics, write_report
from camtrap_fast.sampling import plan_sampling
from camtrap_fast.train.loops import predict
from camtrap_fast.train.rundir import Run


def write_phase_report(out_dir: Path, y_true, y_pred, confidence, keys, classes, train_counts, extra: dict,
                       epoch_counts=None, confusion_png: bool = True) -> dict:
    """metrics.json, per_class.csv, predictions.csv and the confusion matrix in `out_dir`; returns metrics.json.

    train_counts: the original training images per class (rarest/commonest rank by these, in every phase);
    epoch_counts: the images per class one training epoch saw (a rebalanced phase 1's plan).
    """
    metrics = compute_metrics(y_true, y_pred, classes, train_counts=train_counts)
    predictions = [(k, classes[t], classes[p], float(c)) for k, t, p, c in zip(keys, y_true, y_pred, confidence)]
    write_report(out_dir, metrics, classes, train_counts=train_counts, predictions=predictions, extra=extra,
                 epoch_counts=epoch_counts, confusion_png=confusion_png)
    return read_metrics(out_dir)


def headline(metrics: dict) -> dict:
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def evaluate_run(run_dir, split: str = "test", device: str = "auto", shards: Path | None = None,
                 skip_corrupt: bool = False) -> tuple[Path, dict]:
    """Re-evaluate a finished run's final model on a split of its shards; reports go to RUN/eval-<split>/.
    Returns the report folder and its metrics.json."""
    run = Run(Path(run_dir))
    phase = run.final_phase()
    model, config, classes = run.load_model(resolve_device(device), phase)
    manifest = run.manifest(shards)
    if split not in manifest.splits or not manifest.splits[split].samples:
        raise UserError(f"{manifest.root}: split '{split}' has no samples")
    options = dataclasses.replace(config.loader, skip_corrupt=skip_corrupt)
    loader = make_loader(manifest, split, options.for_mode("eval", config.phase1.batch_size,
                                                           str(next(model.parameters()).device)))
    y_true, y_pred, conf = predict(model.__call__, loader, manifest.splits[split].samples, loader.device)
    train_counts = np.asarray(list(manifest.splits["train"].class_counts.values()), dtype=np.int64)
    # The final model's last training epochs: phase 2's as its report recorded them (the original data for
    # retrain, a class-balanced epoch for crt / lws, none for the post-hoc methods), phase 1's plan.
    if phase == 2:
        recorded = read_metrics(run.phase_dir(2)).get("epoch_images_per_class")
        epoch_counts = None if recorded is None else [recorded[c] for c in classes]
    else:
        epoch_counts = plan_sampling(manifest.splits["train"].class_counts, config.sampling).target
    out = run.eval_dir(split)
    metrics = write_phase_report(out, y_true, y_pred, conf, manifest.load_index(split).keys(), classes, train_counts,
                                 {"phase": phase, "split": split, "model": str(run.model_path(phase)),
                                  "skipped_corrupt": loader.skipped}, epoch_counts)
    return out, metrics
