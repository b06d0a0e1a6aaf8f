"""Phase 1 (and the whole of a baseline run): train every layer on the rebalanced epoch plan.

Early stopping on validation macro-F1 or validation loss (`--monitor`), a checkpoint after every epoch, and
`--resume` that continues after the last finished epoch of a killed run. With `--freeze-epochs N` the first N
epochs train the final layer only (train.freezing); the patience count starts again when the whole network
starts training, so early stopping never ends phase 1 before the backbone has trained.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from camtrap_fast.atomic import save_torch
from camtrap_fast.metrics import compute_metrics
from camtrap_fast.sampling import epoch_order, shard_for_rank
from camtrap_fast.train.distributed import broadcast_flag
from camtrap_fast.train.freezing import set_head_only
from camtrap_fast.train.loops import predict, split_loss, train_one_epoch
from camtrap_fast.train.session import Session

log = logging.getLogger(__name__)


@dataclass
class Phase1State:
    """What a checkpoint holds besides weights: enough to continue exactly where a run stopped."""

    next_epoch: int = 0
    best_macro_f1: float = -1.0  # the kept epoch's validation macro-F1
    best_val_loss: float = float("inf")  # the kept epoch's validation loss (absent from older checkpoints)
    best_epoch: int = -1
    epochs_without_gain: int = 0
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def improved(record: dict, state: Phase1State, monitor: str) -> bool:
    """Whether this epoch's validation score beats the kept epoch's: higher macro-F1, or lower loss."""
    if monitor == "loss":
        return record["val_loss"] < state.best_val_loss
    return record["val_macro_f1"] > state.best_macro_f1


def fit_phase1(session: Session, model, train_loader, val_loader, loss_fn, lr: float) -> Phase1State:
    """Train every layer on the plan's epochs (at `lr`: --lr, or lr-find's choice); rank 0 keeps the best epoch's
    weights in phase1/model.pt."""
    config, run, world, device = session.config, session.run, session.world, session.device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    state = Phase1State()
    if session.resume and run.checkpoint_path.exists():
        saved = torch.load(run.checkpoint_path, map_location=device, weights_only=False)
        _unwrap(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = Phase1State(**saved["state"])
        log.info("resuming phase 1 at epoch %d", state.next_epoch + 1)

    train_labels = np.asarray(train_loader.index.labels, dtype=np.int64)
    val_size = session.sizes.get("val", 0)
    epochs, patience = config.phase1.epochs, config.phase1.patience
    freeze, monitor = config.phase1.freeze_epochs, config.phase1.monitor
    for epoch in range(state.next_epoch, epochs):
        head_only = epoch < freeze
        if epoch == freeze and freeze:
            state.epochs_without_gain = 0  # the whole network gets its full patience
        if state.epochs_without_gain >= patience and not head_only:
            break
        set_head_only(_unwrap(model), head_only)
        start = time.perf_counter()
        if config.stream_from:  # remote shards, read sequentially (streaming mode of the sampler)
            urls = [config.stream_from.rstrip("/") + "/" + shard for shard in train_loader.index.shards]
            batches, num_samples = train_loader.stream(urls, session.plan, config.seed, epoch), session.plan.total_target
        else:
            order = epoch_order(train_labels, session.plan, config.seed, epoch)
            if world.distributed:
                order = shard_for_rank(order, world.world_size, world.rank)
            batches, num_samples = train_loader.epoch(order, epoch), len(order)
        stats = train_one_epoch(model, batches, num_samples, epoch, optimizer, loss_fn, device,
                                session.progress and world.is_main, head_only=head_only)
        record = {"epoch": epoch + 1, "loss": round(stats.loss, 5), "images": stats.images,
                  "images_per_s": round(stats.images_per_s * world.world_size, 1)}
        if head_only:
            record["head_only"] = True
        if world.is_main:
            if val_size:
                val = predict(_unwrap(model).eval().__call__, val_loader, val_size, device)
                record["val_loss"] = round(split_loss(val, loss_fn, device), 5)
                record["val_macro_f1"] = compute_metrics(val.y_true, val.y_pred, session.classes).macro_f1
                better = improved(record, state, monitor)
            else:  # no validation split: keep the last epoch
                better = True
            if better:
                state.best_macro_f1 = record.get("val_macro_f1", state.best_macro_f1)
                state.best_val_loss = record.get("val_loss", state.best_val_loss)
                state.best_epoch, state.epochs_without_gain = epoch + 1, 0
                save_torch(run.model_path(1), _unwrap(model).state_dict())
            else:
                state.epochs_without_gain += 1
            state.next_epoch = epoch + 1
            state.seconds += time.perf_counter() - start
            state.history.append(record)
            save_torch(run.checkpoint_path, {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                                             "state": state.__dict__})
            val = (f", val loss {record['val_loss']:.3f}, val macro-F1 {record['val_macro_f1']:.3f}"
                   if "val_macro_f1" in record else "")
            what = " (head only)" if head_only else ""
            print(f"epoch {epoch + 1}/{epochs}{what}: loss {stats.loss:.3f} on {stats.images * world.world_size} "
                  f"images, {record['images_per_s']:.0f} images/s{val}", flush=True)
        # Never stop in the head-only epochs: the whole network has not trained yet.
        stop = broadcast_flag(world, state.epochs_without_gain >= patience and not head_only)
        if stop:
            if world.is_main:
                score = "validation loss" if monitor == "loss" else "validation macro-F1"
                print(f"early stop: no gain in {score} for {patience} epochs (best: epoch {state.best_epoch})",
                      flush=True)
            break
    return state


def _unwrap(model):
    return model.module if hasattr(model, "module") else model
