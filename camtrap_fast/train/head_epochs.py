"""The epochs and the early-stopping rule of every gradient-trained phase-2 head: `train_head`'s fused loop
and LWS's (train.heads.lws) run through `fit_epochs`, so both stop, and choose their epoch, the same way."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from camtrap_fast.metrics import macro_f1
from camtrap_fast.train.head_config import HeadConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRecord:
    """One line of the training history; epoch 0 is the starting head, before any step."""

    epoch: int
    train_loss: float | None
    val_macro_f1: float
    val_accuracy: float
    seconds: float
    val_loss: float | None = None  # the training loss on the validation rows (None: not computed)


@dataclass(frozen=True)
class HeadResult:
    """head_state loads into the head (nn.Linear.load_state_dict); best_epoch counts from 1."""

    head_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_macro_f1: float
    seconds: float
    history: tuple[EpochRecord, ...]


class HeadTrainer(Protocol):
    """What fit_epochs drives: one training epoch over an order of rows, predictions, the head's state."""

    num_classes: int

    def train_epoch(self, features: torch.Tensor, labels: torch.Tensor, order: torch.Tensor) -> float: ...

    def predict(self, features: torch.Tensor) -> torch.Tensor: ...

    def state(self) -> dict[str, torch.Tensor]: ...


def check_inputs(head, features: torch.Tensor, labels: torch.Tensor, role: str) -> None:
    """A ValueError naming `role` (training, validation) when features or labels do not fit the head."""
    if features.ndim != 2 or features.shape[1] != head.in_features:
        raise ValueError(f"{role} features have shape {tuple(features.shape)}; the head expects N x {head.in_features}")
    if not features.is_floating_point():
        raise ValueError(f"{role} features must be floating point (fp16/bf16/fp32), got {features.dtype}")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"{role} labels have shape {tuple(labels.shape)}; "
                         f"give one label per feature row ({features.shape[0]})")
    if len(labels) and (labels.min() < 0 or labels.max() >= head.out_features):
        raise ValueError(f"{role} labels must be class indices in 0..{head.out_features - 1}")


def shuffled_order(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of one epoch of head training (int64), seeded by (seed, epoch)."""
    return torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(num_samples))


def _evaluate(trainer: HeadTrainer, features: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    predicted = trainer.predict(features).cpu().numpy()
    truth = labels.cpu().numpy()
    accuracy = float((predicted == truth).mean()) if len(truth) else 0.0
    return macro_f1(truth, predicted, trainer.num_classes), accuracy


def fit_epochs(trainer: HeadTrainer, features: torch.Tensor, labels: torch.Tensor, val_features: torch.Tensor | None,
               val_labels: torch.Tensor | None, config: HeadConfig, seed: int,
               order_for_epoch: Callable[[int], torch.Tensor] | None, started: float,
               val_loss_of: Callable[[], float] | None = None) -> HeadResult:
    """The epochs and the early-stopping rule of every gradient-trained phase-2 head (train_head's, and LWS's).

    Keeps the epoch with the best validation macro F1 and stops after `patience` epochs without a better one;
    val_features None: every epoch runs and the last one is kept. Runs on the training features' device.
    val_loss_of: the trainer's current validation loss, recorded beside the macro F1 in the history.
    """
    device = features.device
    has_val = val_features is not None
    if has_val:
        val_features = val_features.to(device)
    if order_for_epoch is None:
        def order_for_epoch(epoch: int) -> torch.Tensor:
            return shuffled_order(len(labels), seed, epoch)
    nan = float("nan")
    val_f1, val_accuracy = _evaluate(trainer, val_features, val_labels) if has_val else (nan, nan)
    def val_loss() -> float | None:
        return float(val_loss_of()) if has_val and val_loss_of is not None else None

    history = [EpochRecord(0, None, val_f1, val_accuracy, time.perf_counter() - started, val_loss())]
    best_state, best_epoch, best_f1, stale = None, 0, nan, 0
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        order = torch.as_tensor(order_for_epoch(epoch), dtype=torch.int64).to(device)
        train_loss = trainer.train_epoch(features, labels, order)
        val_f1, val_accuracy = _evaluate(trainer, val_features, val_labels) if has_val else (nan, nan)
        history.append(EpochRecord(epoch, train_loss, val_f1, val_accuracy, time.perf_counter() - epoch_started,
                                   val_loss()))
        log.debug("head epoch %d: loss %.4f, val loss %s, val macro F1 %.4f", epoch, train_loss, history[-1].val_loss,
                  val_f1)
        if not has_val or best_state is None or val_f1 > best_f1:
            best_state, best_epoch, best_f1, stale = trainer.state(), epoch, val_f1, 0
        else:
            stale += 1
            if config.patience is not None and stale >= config.patience:
                break
    return HeadResult(best_state, best_epoch, best_f1, time.perf_counter() - started, tuple(history))
