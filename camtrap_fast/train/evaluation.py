"""Scoring a model on a split and writing its report: for each phase of a run, and for `eval RUN` later."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camtrap_fast.devices import resolve_device
from camtrap_fast.errors import UserError
from camtrap_fast.metrics import compute_metrics, group_labels, pool_by_group
from camtrap_fast.pipelines import make_loader
from camtrap_fast.report import read_metrics, write_report
from camtrap_fast.sampling import plan_sampling
from camtrap_fast.shards.frames import FRAMES, first_frames, split_first_frames
from camtrap_fast.train.loops import predict
from camtrap_fast.train.rundir import Run

AGGREGATES = ("none", "sequence")


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
                 skip_corrupt: bool = False, aggregate: str = "none", frames: str = "all") -> EvalResult:
    """Re-evaluate a finished run's final model on a split of its shards; reports go to RUN/eval-<split>/, with
    aggregate "sequence" the sequence-level report to RUN/eval-<split>/sequences/, and with frames "first" the
    report on the first frame of each sequence alone to RUN/eval-<split>/first-frames/ (shards.frames)."""
    if aggregate not in AGGREGATES:
        raise UserError(f"--aggregate {aggregate}: choose {' or '.join(AGGREGATES)}")
    if frames not in FRAMES:
        raise UserError(f"--frames {frames}: choose {' or '.join(FRAMES)}")
    run = Run(Path(run_dir))
    phase = run.final_phase()
    model, config, classes = run.load_model(resolve_device(device), phase)
    manifest = run.manifest(shards)
    if split not in manifest.splits or not manifest.splits[split].samples:
        raise UserError(f"{manifest.root}: split '{split}' has no samples")
    index = manifest.load_index(split)
    if frames == "first":  # refused before the model runs
        first_frames(index.keys([0]), index.sequences(), [""] * len(index), {}, f"{manifest.root / split}")
    options = dataclasses.replace(config.loader, skip_corrupt=skip_corrupt)
    loader = make_loader(manifest, split, options.for_mode("eval", config.phase1.batch_size,
                                                           str(next(model.parameters()).device)))
    scored = predict(model.__call__, loader, manifest.splits[split].samples, loader.device)
    train_counts = np.asarray(list(manifest.splits["train"].class_counts.values()), dtype=np.int64)
    # The final model's last training epochs: phase 2's as its report recorded them (the original data for
    # retrain, a class-balanced epoch for crt / lws, none for the post-hoc methods), phase 1's plan.
    if phase == 2:
        recorded = read_metrics(run.phase_dir(2)).get("epoch_images_per_class")
        epoch_counts = None if recorded is None else [recorded[c] for c in classes]
    else:
        epoch_counts = plan_sampling(manifest.splits["train"].class_counts, config.sampling).target
    out = run.eval_dir(split)
    extra = {"phase": phase, "split": split, "model": str(run.model_path(phase)),
             "skipped_corrupt": len(loader.skipped_samples), "eval_crop": config.loader.eval_crop}
    keys = index.keys(scored.positions)
    metrics = write_phase_report(out, scored.y_true, scored.y_pred, scored.confidence, keys, classes, train_counts,
                                 extra, epoch_counts)
    sequence_metrics = None
    if aggregate == "sequence":
        groups = sequence_groups(index, scored.positions)
        ids, pooled = pool_by_group(scored.probabilities.numpy(), groups)
        truth = group_labels(scored.y_true, groups, ids, len(classes))
        sequence_metrics = write_phase_report(
            out / "sequences", truth, pooled.argmax(axis=1), pooled.max(axis=1), ids, classes, train_counts,
            {**extra, "level": "sequence", "frames": len(groups),
             "grouped_by": "sequence id; else source image (its crops); else the sample itself"}, epoch_counts)
    first_metrics = None
    if frames == "first":
        chosen = split_first_frames(manifest, split, scored.positions)
        rows = np.flatnonzero(chosen.mask)
        first_metrics = write_phase_report(
            out / "first-frames", scored.y_true[rows], scored.y_pred[rows], scored.confidence[rows],
            [keys[r] for r in rows], classes, train_counts,
            {**extra, "frames": "first", "sequences": chosen.sequences, "frames_ordered_by": chosen.ordered_by,
             "chosen": chosen.describe()}, epoch_counts)
    return EvalResult(out, metrics, sequence_metrics, first_metrics)


@dataclass(frozen=True)
class EvalResult:
    """The report folder and its metrics.json; the sequence-level and the first-frame metrics.json when asked."""

    out: Path
    metrics: dict
    sequences: dict | None = None
    first_frames: dict | None = None


def sequence_groups(index, positions) -> list[str]:
    """Each sample's capture: its sequence id, else its source image (all crops of one photo), else itself."""
    sequences, sources, keys = index.sequences(positions), index.sources(positions), index.keys(positions)
    return [f"seq:{seq}" if seq else f"image:{source}" if source else f"sample:{key}"
            for seq, source, key in zip(sequences, sources, keys)]
