"""`camtrap-fast train`: a run directory from shards, phase 1 then (with --two-phase) phase 2, with reports.

The run directory's layout is `train.rundir`'s; what is decided once per run is `train.session`'s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from camtrap_fast.atomic import save_torch
from camtrap_fast.devices import resolve_device
from camtrap_fast.errors import UserError
from camtrap_fast.losses import build_loss
from camtrap_fast.model import build_model, split_backbone_head
from camtrap_fast.pipelines import make_loader
from camtrap_fast.report import plot_f1_change, read_metrics
from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.train.config import AUTO_LR, TrainConfig
from camtrap_fast.train.distributed import barrier, init_world, local_rank, shutdown
from camtrap_fast.train.evaluation import headline, write_phase_report
from camtrap_fast.train.loops import predict
from camtrap_fast.train.parallelism import torch_threads_for
from camtrap_fast.train.phase1 import Phase1State, fit_phase1
from camtrap_fast.train.phase2 import fit_phase2, head_predictions
from camtrap_fast.train.rundir import Run
from camtrap_fast.train.session import Session

log = logging.getLogger(__name__)


def train(config: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
          make_eval_loader: Callable = make_loader) -> dict:
    """Train into the run directory `out` (new, or continued with `resume`); returns summary.json's content.

    make_eval_loader: makes the eval loaders (`make_loader`'s signature); a study passes one that shares decoded
    splits between its runs (pipelines.decoded)."""
    manifest = load_manifest(config.shards)
    device = resolve_device(config.device, local_rank())
    world = init_world(device)
    try:
        session = Session(config, Run(Path(out)), manifest, device, world, resume, progress)
        with torch_threads_for(session.parallelism):
            return _train(session, make_eval_loader)
    finally:
        shutdown(world)


def _train(session: Session, make_eval_loader: Callable) -> dict:
    config, run, manifest, device, world = session.config, session.run, session.manifest, session.device, session.world
    if world.is_main:
        if session.resume and run.config_path.exists():
            run.check_resume(config, manifest)
        elif not session.resume:
            run.check_new()
    classes = session.classes
    torch.manual_seed(config.seed)
    plan, sizes, eval_split = session.plan, session.sizes, session.eval_split

    train_config = session.loader_config("train")
    if config.stream_from:  # streaming decodes in the PIL backend's workers; DALI reads local shards by offset
        train_config = dataclasses.replace(train_config, backend="pil")
    train_loader = make_loader(manifest, "train", train_config)
    # The train split is only evaluated (feature extraction) in phase 2; its loader's workers would idle otherwise.
    eval_loaders = {s: make_eval_loader(manifest, s, session.loader_config("eval"))
                    for s in sizes if s != "train" or config.two_phase}

    model = build_model(config.model.arch, len(classes), config.model.weights).to(device)
    _check_input_size(model, config.model.arch, config.loader.image_size, device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if world.distributed:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    phase1_targets = session.epoch_counts
    loss1 = build_loss(config.loss, phase1_targets).to(device)

    # Only now, with every option checked (sampling, weights, loaders, loss), does the run directory appear:
    # a mistake on the command line leaves nothing half-made behind.
    if world.is_main:
        run.start(config, manifest, device, session.parallelism.as_dict())
        for note in session.notes():
            print(f"note: {note}", flush=True)
    barrier(world)

    summary = {}
    phase1_dir = run.phase_dir(1)
    if _phase1_to_run(session):
        if world.is_main:
            print(f"phase 1: {config.model.arch} on {plan.total_target} samples/epoch (sampling {config.sampling.text}), "
                  f"{train_loader.backend} backend on {device}, {session.parallelism.describe()}", flush=True)
        lr = phase1_lr(session, model, train_loader, loss1)
        state = fit_phase1(session, model, train_loader, eval_loaders.get("val"), loss1, lr)
        if world.is_main:
            inner = model.module if world.distributed else model
            inner.load_state_dict(torch.load(run.model_path(1), map_location=device, weights_only=True))
            scored = predict(inner.eval().__call__, eval_loaders[eval_split], sizes[eval_split], device)
            keys = manifest.load_index(eval_split).keys(scored.positions)
            metrics = write_phase_report(phase1_dir, scored.y_true, scored.y_pred, scored.confidence, keys, classes,
                                         session.train_counts, {
                "phase": 1, "split": eval_split, "seconds": round(state.seconds, 2), "best_epoch": state.best_epoch,
                "lr": lr, "lr_from": "lr-find" if config.phase1.lr == AUTO_LR else "--lr",
                "monitor": config.phase1.monitor, "freeze_epochs": config.phase1.freeze_epochs,
                "epochs_run": state.next_epoch, "sampling": config.sampling.text, "history": state.history,
                "epoch_images_per_class": dict(zip(classes, map(int, phase1_targets))),
                "skipped_corrupt": _skipped(train_loader, eval_loaders), "notes": session.notes()},
                epoch_counts=phase1_targets)
            summary["phase1"] = headline(metrics)
    barrier(world)

    if config.two_phase and world.is_main:
        summary.update(_phase2(session, model.module if world.distributed else model, eval_loaders))
    if world.is_main:
        previous = json.loads(run.summary_path.read_text()) if run.summary_path.exists() else {}
        summary = {**previous, **summary, "split": session.eval_split, "warnings": session.score_warnings()}
        run.write_json(run.summary_path.name, summary)
    return summary


def _phase2(session: Session, model, eval_loaders: dict) -> dict:
    config, run, manifest, device = session.config, session.run, session.manifest, session.device
    classes, train_counts, eval_split = session.classes, session.train_counts, session.eval_split
    phase1_dir, phase2_dir = run.phase_dir(1), run.phase_dir(2)
    model.load_state_dict(torch.load(run.model_path(1), map_location=device, weights_only=True))
    summary = {"phase1": headline(read_metrics(phase1_dir))}
    method = config.head.method
    what = ("retraining the final layer on the original data" if method == "retrain"
            else f"fitting the final layer by {method}")
    print(f"phase 2: caching frozen-backbone features, then {what}", flush=True)
    result = fit_phase2(session, model, eval_loaders)
    fit = result.fit
    save_torch(run.model_path(2), _head_into_model(model, fit.head_state))
    y_true, y_pred, conf = head_predictions(fit.head_state, result.caches[eval_split])
    keys = manifest.load_index(eval_split).keys(result.caches[eval_split].positions.tolist())
    epoch_counts = fit.epoch_counts
    metrics = write_phase_report(phase2_dir, y_true, y_pred, conf, keys, classes, train_counts, {
        "phase": 2, "split": eval_split, "feature_extraction_seconds": round(result.extraction_seconds, 2),
        **fit.report_fields(), "seconds": round(result.extraction_seconds + fit.seconds, 2),
        "epoch_images_per_class": None if epoch_counts is None else dict(zip(classes, epoch_counts)),
        "skipped_corrupt": _skipped(None, eval_loaders), "notes": session.notes()}, epoch_counts=epoch_counts)
    summary["phase2"] = headline(metrics)
    baseline = None
    if config.compare is not None:
        compared = Run(config.compare)
        baseline_metrics = read_metrics(compared.phase_dir(compared.final_phase()))
        baseline = [baseline_metrics["per_class"].get(c, {}).get("f1", float("nan")) for c in classes]
        summary["baseline"] = headline(baseline_metrics)
    phase1_metrics = read_metrics(phase1_dir)
    plot_f1_change(phase2_dir / "f1_change.png", classes, train_counts,
                   [metrics["per_class"][c]["f1"] for c in classes],
                   [phase1_metrics["per_class"][c]["f1"] for c in classes], baseline)
    return summary


def phase1_lr(session: Session, model, train_loader, loss_fn) -> float:
    """Phase 1's lr: --lr, or with --lr auto the suggestion of a range test on the training plan, run once per run
    (RUN/lr_find/: a resumed run reads it back) on a copy of the model, so training starts from the same weights."""
    from camtrap_fast.train.lr_find import plan_batches, range_test, read_finding, write_finding

    config, run = session.config, session.run
    if config.phase1.lr != AUTO_LR:
        return float(config.phase1.lr)
    path = run.root / "lr_find" / "lr_find.json"
    if session.resume and path.is_file():
        finding = read_finding(path)
    else:
        labels = np.asarray(train_loader.index.labels, dtype=np.int64)
        finding = range_test(model, plan_batches(train_loader, labels, session.plan, config.seed), loss_fn,
                             session.device, batch_size=config.phase1.batch_size,
                             head_only=config.phase1.freeze_epochs > 0)
        write_finding(path.parent, finding, f"lr-find: {config.model.arch}, {config.loss.name} loss, sampling "
                      f"{config.sampling.text}")
    print(f"lr-find: {finding.describe()} -> {path.parent}", flush=True)
    if finding.suggestion is None:
        raise UserError(f"{path}: --lr auto: the range test found no descending stretch of the loss "
                        f"({finding.stopped} after {len(finding.lrs)} batches); look at lr_find.png and give --lr")
    return finding.suggestion


def _phase1_to_run(session: Session) -> bool:
    """Whether phase 1 (still) has epochs to run. A resumed run whose phase 1 finished continues it only when
    more epochs are allowed now (a larger --epochs, or --patience after an early stop); otherwise says why not."""
    run, phase1 = session.run, session.config.phase1
    if not (session.resume and (run.phase_dir(1) / "metrics.json").exists()):
        return True
    if not run.checkpoint_path.exists():
        print(f"resume: phase 1 finished, and without {run.checkpoint_path} it cannot be continued", flush=True)
        return False
    state = Phase1State(**torch.load(run.checkpoint_path, map_location="cpu", weights_only=False)["state"])
    stopped_early = state.epochs_without_gain >= phase1.patience
    if state.next_epoch < phase1.epochs and not stopped_early:
        if session.world.is_main:
            print(f"resume: phase 1 finished at epoch {state.next_epoch}; continuing it to --epochs {phase1.epochs}",
                  flush=True)
        return True
    if session.world.is_main:
        score = "validation loss" if phase1.monitor == "loss" else "validation macro-F1"
        how = (f"it stopped early (no gain in {score} for {state.epochs_without_gain} epochs): "
               "a larger --patience continues it" if stopped_early
               else f"it ran its {state.next_epoch} epochs: a larger --epochs continues it")
        print(f"resume: phase 1 already finished at epoch {state.next_epoch} (best: epoch {state.best_epoch}); "
              f"{how}", flush=True)
    return False


def _skipped(train_loader, eval_loaders: dict) -> dict[str, int]:
    """Distinct corrupt samples skipped (--skip-corrupt) so far, per loader: each once, however many epochs met it."""
    counts = {f"{split} (eval)": len(loader.skipped_samples) for split, loader in eval_loaders.items()}
    if train_loader is not None:
        counts["train"] = len(train_loader.skipped_samples)
    return counts


def _check_input_size(model, arch: str, image_size: int, device: torch.device) -> None:
    """Refuse a crop the network cannot take (a ViT wants exactly its patch grid) before any work."""
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, 3, image_size, image_size, device=device))
    except (RuntimeError, ValueError, AssertionError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"--image-size {image_size}: {arch} cannot take {image_size}-px crops ({detail})") from None


def _head_into_model(model, head_state: dict) -> dict:
    """The phase-2 model as a full state dict: phase-1 backbone + retrained head."""
    _, head = split_backbone_head(model)
    head.load_state_dict({k: v.to(head.weight.device, head.weight.dtype) for k, v in head_state.items()})
    return model.state_dict()
