"""`camtrap-fast train`: a run directory from shards, phase 1 then (with --two-phase) phase 2, with reports.

RUN/
  config.json, environment.json     resolved config; versions, device, git sha, machine
  classes.json, preprocessing.json   class names in label order, shard/crop sizes (predict needs no shards)
  checkpoint.pt                      phase-1 state after the last finished epoch (for --resume)
  phase1/  model.pt metrics.json per_class.csv predictions.csv confusion_matrix.png
  features/{train,val,test}.pt       phase-2 feature cache (two-phase runs)
  phase2/  model.pt metrics.json per_class.csv predictions.csv confusion_matrix.png f1_change.png
  summary.json                       accuracy and macro-F1 per phase
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from camtrap_fast.devices import resolve_device
from camtrap_fast.environment import git_sha, machine, package_versions
from camtrap_fast.errors import UserError
from camtrap_fast.losses import make_loss
from camtrap_fast.metrics import compute_metrics
from camtrap_fast.model import build_model, split_backbone_head
from camtrap_fast.pipelines import LoaderConfig, make_loader
from camtrap_fast.report import plot_f1_change, read_metrics, write_report
from camtrap_fast.sampling import parse_sampling, plan_sampling
from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.train.config import TrainConfig
from camtrap_fast.train.distributed import World, barrier, init_world, shutdown
from camtrap_fast.train.loops import predict
from camtrap_fast.train.phase1 import fit_phase1, labels_array
from camtrap_fast.train.phase2 import fit_phase2, head_predictions

log = logging.getLogger(__name__)


def train(config: TrainConfig, progress: bool = True) -> dict:
    manifest = load_manifest(config.shards)
    device = resolve_device(config.device)
    world = init_world(device)
    if device.type == "cuda" and world.distributed:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    try:
        return _train(config, manifest, device, world, progress)
    finally:
        shutdown(world)


def _train(config: TrainConfig, manifest, device, world: World, progress: bool) -> dict:
    run = config.out
    if world.is_main:
        _check_run_dir(config)
    classes = list(manifest.classes)
    torch.manual_seed(config.seed)
    train_index = manifest.load_index("train")
    train_counts = np.asarray(list(manifest.splits["train"].class_counts.values()), dtype=np.int64)
    plan = plan_sampling(manifest.splits["train"].class_counts, parse_sampling(config.sampling, config.ros_ratios))
    eval_split = "test" if manifest.splits.get("test") and manifest.splits["test"].samples else "val"
    sizes = {s: info.samples for s, info in manifest.splits.items() if info.samples}
    if eval_split not in sizes:
        raise UserError(f"{config.shards}: needs a val or test split to evaluate on (reshard with --split)")
    if config.stream_from and world.distributed:
        raise UserError("--stream-from with torchrun is not supported yet: each rank would need its own shard part")

    loader_args = dict(backend=config.backend, device=device.type, batch_size=config.batch_size,
                       image_size=config.image_size, workers=config.workers, seed=config.seed + world.rank)
    # Streaming decodes in the PIL backend's workers; DALI reads local shards by byte offset.
    train_args = {**loader_args, "backend": "pil"} if config.stream_from else loader_args
    train_loader = make_loader(manifest, "train", LoaderConfig(
        mode="train", crop_scale=(config.crop_scale_min, 1.0), **train_args))
    # The train split is only evaluated (feature extraction) in phase 2; its loader's workers would idle otherwise.
    eval_loaders = {s: make_loader(manifest, s, LoaderConfig(mode="eval", **loader_args))
                    for s in sizes if s != "train" or config.two_phase}

    model = build_model(config.arch, len(classes), config.weights).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if world.distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    phase1_targets = np.asarray(plan.target, dtype=np.int64)
    loss1 = _loss(config, phase1_targets).to(device)

    # Only now, with every option checked (sampling, weights, loaders, loss), does the run directory appear:
    # a mistake on the command line leaves nothing half-made behind.
    if world.is_main:
        _prepare_run_dir(config)
        (run / "classes.json").write_text(json.dumps(classes) + "\n")
        # What predict must repeat on new photos, even after the shards are gone.
        (run / "preprocessing.json").write_text(json.dumps(
            {"shard_size": manifest.image_size, "shard_quality": manifest.quality,
             "image_size": config.image_size}) + "\n")
    barrier(world)

    summary = {}
    phase1_dir = run / "phase1"
    if not (config.resume and (phase1_dir / "metrics.json").exists()):
        if world.is_main:
            print(f"phase 1: {config.arch} on {plan.total_target} samples/epoch (sampling {config.sampling}), "
                  f"{train_loader.backend} backend on {device}", flush=True)
        state = fit_phase1(model, config, plan, labels_array(train_index), train_loader, eval_loaders.get("val"),
                           sizes.get("val", 0), classes, loss1, device, world, run / "checkpoint.pt",
                           phase1_dir / "model.pt", progress)
        if world.is_main:
            inner = model.module if world.distributed else model
            inner.load_state_dict(torch.load(phase1_dir / "model.pt", map_location=device, weights_only=True))
            y_true, y_pred, conf = predict(inner.eval().__call__, eval_loaders[eval_split], sizes[eval_split], device)
            keys = manifest.load_index(eval_split).keys()
            metrics = _report(phase1_dir, y_true, y_pred, conf, keys, classes, phase1_targets, {
                "phase": 1, "split": eval_split, "seconds": round(state.seconds, 2), "best_epoch": state.best_epoch,
                "epochs_run": state.next_epoch, "sampling": config.sampling, "history": state.history,
                "epoch_images_per_class": dict(zip(classes, map(int, phase1_targets)))})
            summary["phase1"] = _headline(metrics)
    barrier(world)

    if config.two_phase and world.is_main:
        inner = model.module if world.distributed else model
        inner.load_state_dict(torch.load(phase1_dir / "model.pt", map_location=device, weights_only=True))
        summary.setdefault("phase1", _headline(read_metrics(phase1_dir)))
        print("phase 2: caching frozen-backbone features, then training the final layer on the original data",
              flush=True)
        loss2 = _loss(config, train_counts).to("cpu")
        result = fit_phase2(inner, config, manifest, eval_loaders, sizes, device, run / "features",
                            phase1_dir / "model.pt", loss2)
        head_weights = _head_into_model(inner, result.head_state)
        phase2_dir = run / "phase2"
        torch.save(head_weights, _tmp(phase2_dir / "model.pt"))
        os.replace(_tmp(phase2_dir / "model.pt"), phase2_dir / "model.pt")
        y_true, y_pred, conf = head_predictions(result.head_state, result.caches[eval_split])
        keys = manifest.load_index(eval_split).keys()
        metrics = _report(phase2_dir, y_true, y_pred, conf, keys, classes, train_counts, {
            "phase": 2, "split": eval_split, "feature_extraction_seconds": round(result.extraction_seconds, 2),
            "head_training_seconds": round(result.head_seconds, 3), "best_epoch": result.best_epoch,
            "seconds": round(result.extraction_seconds + result.head_seconds, 2),
            "epoch_images_per_class": dict(zip(classes, map(int, train_counts)))})
        summary["phase2"] = _headline(metrics)
        baseline = None
        if config.compare is not None:
            baseline_metrics = read_metrics(_final_phase_dir(config.compare))
            baseline = [baseline_metrics["per_class"].get(c, {}).get("f1", float("nan")) for c in classes]
            summary["baseline"] = _headline(baseline_metrics)
        phase1_metrics = read_metrics(phase1_dir)
        plot_f1_change(phase2_dir / "f1_change.png", classes, train_counts,
                       [metrics["per_class"][c]["f1"] for c in classes],
                       [phase1_metrics["per_class"][c]["f1"] for c in classes], baseline)
    if world.is_main:
        previous = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
        summary = {**previous, **summary}
        (run / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _loss(config: TrainConfig, class_counts: np.ndarray):
    alpha = config.focal_alpha
    if alpha is not None and alpha != "inverse-frequency":
        try:
            alpha = float(alpha)
        except ValueError:
            raise UserError(f"--focal-alpha {alpha}: a number or inverse-frequency") from None
    return make_loss(config.loss, class_counts, focal_gamma=config.focal_gamma, focal_alpha=alpha,
                     class_weights=config.class_weights)


def _report(out_dir: Path, y_true, y_pred, confidence, keys, classes, train_counts, extra: dict) -> dict:
    metrics = compute_metrics(y_true, y_pred, classes, train_counts=train_counts)
    predictions = [(k, classes[t], classes[p], float(c)) for k, t, p, c in zip(keys, y_true, y_pred, confidence)]
    write_report(out_dir, metrics, classes, train_counts=train_counts, predictions=predictions, extra=extra)
    return read_metrics(out_dir)


def _headline(metrics: dict) -> dict:
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}


def _head_into_model(model, head_state: dict) -> dict:
    """The phase-2 model as a full state dict: phase-1 backbone + retrained head."""
    _, head = split_backbone_head(model)
    head.load_state_dict({k: v.to(head.weight.device, head.weight.dtype) for k, v in head_state.items()})
    return model.state_dict()


def _final_phase_dir(run: Path) -> Path:
    return run / "phase2" if (run / "phase2" / "metrics.json").exists() else run / "phase1"


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".tmp")


def _check_run_dir(config: TrainConfig) -> None:
    """Refuse a used --out before any work: a run is only continued on purpose, with the same options."""
    run = config.out
    if run.exists() and any(run.iterdir()) and not config.resume:
        raise UserError(f"{run}: run directory is not empty; pass --resume to continue it or choose another --out")
    if config.resume and (run / "config.json").exists():
        saved = TrainConfig.from_json((run / "config.json").read_text())
        if replace(saved, resume=True, epochs=config.epochs) != replace(config, resume=True, epochs=config.epochs):
            raise UserError(f"{run}: --resume with options that differ from the run's config.json")


def _prepare_run_dir(config: TrainConfig) -> None:
    run = config.out
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(config.to_json())
    device = "cuda" if torch.cuda.is_available() and config.device != "cpu" else "cpu"
    environment = {"versions": package_versions(), "git_sha": git_sha(), "machine": machine(), "device": device,
                   "cuda_device": torch.cuda.get_device_name() if device == "cuda" else None,
                   "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (run / "environment.json").write_text(json.dumps(environment, indent=1) + "\n")


def load_run_model(run: Path, device: torch.device):
    """The final model of a run (phase 2 when present), its config and class names, for eval and predict."""
    if not (run / "config.json").is_file():
        raise UserError(f"{run}: not a camtrap-fast training run (no config.json)")
    config = TrainConfig.from_json((run / "config.json").read_text())
    phase_dir = _final_phase_dir(run)
    if not (phase_dir / "model.pt").is_file():
        raise UserError(f"{run}: the run has no trained model yet ({phase_dir / 'model.pt'} missing)")
    classes = json.loads((run / "classes.json").read_text())
    model = build_model(config.arch, len(classes), None)
    model.load_state_dict(torch.load(phase_dir / "model.pt", map_location="cpu", weights_only=True))
    return model.to(device).eval(), config, classes


def evaluate_run(run_dir, split: str = "test") -> Path:
    """Re-evaluate a finished run's final model on a split of its shards; reports go to RUN/eval-<split>/."""
    run = Path(run_dir)
    device = resolve_device("auto")
    model, config, classes = load_run_model(run, device)
    manifest = load_manifest(config.shards)
    if split not in manifest.splits or not manifest.splits[split].samples:
        raise UserError(f"{config.shards}: split '{split}' has no samples")
    loader = make_loader(manifest, split, LoaderConfig(mode="eval", backend=config.backend, device=device.type,
                                                       batch_size=config.batch_size, image_size=config.image_size,
                                                       workers=config.workers))
    y_true, y_pred, conf = predict(model.__call__, loader, manifest.splits[split].samples, device)
    counts = np.asarray(list(manifest.splits["train"].class_counts.values()), dtype=np.int64)
    out = run / f"eval-{split}"
    _report(out, y_true, y_pred, conf, manifest.load_index(split).keys(), classes, counts,
            {"split": split, "model": str(_final_phase_dir(run) / "model.pt")})
    return out
