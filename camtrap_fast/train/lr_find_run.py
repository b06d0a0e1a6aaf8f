"""`lr-find SHARDS`: the range test (train.lr_find) for a TrainConfig, set up as `train` sets up phase 1 (the
same plan, loader, model, initial weights and loss), without a run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from camtrap_fast.devices import resolve_device
from camtrap_fast.losses import build_loss
from camtrap_fast.model import build_model
from camtrap_fast.pipelines import make_loader
from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.train.config import TrainConfig
from camtrap_fast.train.distributed import init_world, shutdown
from camtrap_fast.train.lr_find import LrFinding, plan_batches, range_test, write_finding
from camtrap_fast.train.rundir import Run
from camtrap_fast.train.session import Session


def find_lr(config: TrainConfig, out: Path, start_lr: float, end_lr: float, iterations: int,
            progress: bool = False) -> tuple[LrFinding, tuple[Path, Path]]:
    manifest = load_manifest(config.shards)
    device = resolve_device(config.device, 0)
    world = init_world(device)
    try:
        session = Session(config, Run(out), manifest, device, world, False, progress)
        torch.manual_seed(config.seed)  # the initial weights `train --seed` starts from
        loader = make_loader(manifest, "train", session.loader_config("train"))
        model = build_model(config.model.arch, len(session.classes), config.model.weights).to(device)
        loss_fn = build_loss(config.loss, session.epoch_counts).to(device)
        labels = np.asarray(loader.index.labels, dtype=np.int64)
        finding = range_test(model, plan_batches(loader, labels, session.plan, config.seed), loss_fn, device,
                             start_lr, end_lr, iterations, config.phase1.batch_size,
                             head_only=config.phase1.freeze_epochs > 0)
        title = (f"lr-find on {manifest.root.parent.name}/{manifest.root.name}: {config.model.arch}, {config.loss.name} loss, sampling "
                 f"{config.sampling.text}, batch {config.phase1.batch_size}")
        return finding, write_finding(out, finding, title)
    finally:
        shutdown(world)
