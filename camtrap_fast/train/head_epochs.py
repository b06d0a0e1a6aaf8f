"""The epochs and the early-stopping rule of every gradient-trained phase-2 head: `train_head`'s fused loop
and LWS's (train.heads.lws) run through `fit_epochs`, so both stop, and choose their epoch, the same way."""

from __future__ import annotations

import concurrent.futures
import contextlib
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

    def train_epoch(self, features: torch.Tensor, labels: torch.Tensor, order: torch.Tensor,
                    targets: torch.Tensor) -> float:
        """One pass over features[order]; targets: labels[order], worked out beside the order (fit_epochs)."""
        ...

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


EVAL_ROWS = 16384  # rows per matmul when predicting the validation set


def predict_rows(features: torch.Tensor, logits_of: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """argmax of logits_of(rows) over `features` in blocks of EVAL_ROWS (int64)."""
    parts = [logits_of(rows).argmax(1) for rows in features.split(EVAL_ROWS)]
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64)


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
               val_loss_of: Callable[[HeadTrainer], float] | None = None) -> HeadResult:
    """The epochs and the early-stopping rule of every gradient-trained phase-2 head (train_head's, and LWS's).

    Keeps the epoch with the best validation macro F1 and stops after `patience` epochs without a better one;
    val_features None: every epoch runs and the last one is kept. Runs on the training features' device.
    val_loss_of(trainer): its validation loss, recorded beside the macro F1 in the history.

    A trainer whose `pipelines_validation` is true validates each epoch on a helper thread, from `frozen()` (a copy
    of its weights as the epoch left them), while the next epoch trains: on a machine with a core to spare the
    validation then costs no time. The epoch kept and the history are those of validating in turn: an epoch's
    scores are settled before anything is decided about the next, and an epoch trained after the one that stops
    training is dropped (its time is lost, nothing else). The starting head (epoch 0) is validated there too, while
    epoch 1 trains (its validation also makes the validation rows' copy, ~30 ms of the season-9 head), and the last
    epoch on the calling thread, which has nothing left to train. The helper thread also works out each next
    epoch's order while this one trains (order_for_epoch must be a function of the epoch alone, as every order here
    is): the shuffle of 155k rows took ~3 ms an epoch on the training thread, 2-3 % of the season-9 head.
    """
    device = features.device
    has_val = val_features is not None
    if has_val:
        val_features = val_features.to(device)
    if order_for_epoch is None:
        def order_for_epoch(epoch: int) -> torch.Tensor:
            return shuffled_order(len(labels), seed, epoch)

    def epoch_rows(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The epoch's order and its rows' labels in that order (0.9 ms an epoch of 155k rows, on the helper thread
        where there is one)."""
        order = torch.as_tensor(order_for_epoch(epoch), dtype=torch.int64).to(device)
        return order, torch.index_select(labels, 0, order)
    nan = float("nan")
    no_scores = (nan, nan, None, 0.0)

    def evaluate(view: HeadTrainer) -> tuple[float, float, float | None, float]:
        """(macro F1, accuracy, validation loss, seconds) of `view` on the validation rows."""
        began = time.perf_counter()
        with torch.no_grad():  # thread-local: the helper thread does not inherit the caller's
            f1, accuracy = _evaluate(view, val_features, val_labels)
            loss = float(val_loss_of(view)) if val_loss_of is not None else None
        return f1, accuracy, loss, time.perf_counter() - began

    pipelined = has_val and getattr(trainer, "pipelines_validation", False)
    history: list[EpochRecord] = []

    def record_start(scores, seconds: float) -> None:
        """The history's epoch 0: the starting head's scores; seconds: from the call to its validation's end."""
        f1, accuracy, loss, _ = scores
        history.append(EpochRecord(0, None, f1, accuracy, seconds, loss))

    if not pipelined:
        record_start(evaluate(trainer) if has_val else no_scores, time.perf_counter() - started)
    best_state, best_epoch, best_f1, stale = None, 0, nan, 0

    def settle(epoch: int, train_loss: float, train_seconds: float, view: HeadTrainer, scores) -> bool:
        """Record the epoch and keep its state if it is the best so far; True: stop training."""
        nonlocal best_state, best_epoch, best_f1, stale
        f1, accuracy, loss, val_seconds = scores
        history.append(EpochRecord(epoch, train_loss, f1, accuracy, train_seconds + val_seconds, loss))
        log.debug("head epoch %d: loss %.4f, val loss %s, val macro F1 %.4f", epoch, train_loss, loss, f1)
        if not has_val or best_state is None or f1 > best_f1:
            best_state, best_epoch, best_f1, stale = view.state(), epoch, f1, 0
            return False
        stale += 1
        return config.patience is not None and stale >= config.patience

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) if pipelined else contextlib.nullcontext() as pool:
        pending = None  # (epoch, train loss, train seconds, view, its validation's future)
        next_order = None  # the helper's future of this epoch's order and targets (pipelined)
        # The starting head too is validated on the helper while epoch 1 trains: its first validation also makes
        # the validation rows' padded copy (eval_logits), ~30 ms of the season-9 head's fixed cost on the training
        # thread when it ran there.
        start_scores = pool.submit(evaluate, trainer.frozen()) if pipelined else None
        setup_seconds = time.perf_counter() - started

        def record_start_when_scored() -> None:
            nonlocal start_scores
            if start_scores is not None:
                scores = start_scores.result()
                record_start(scores, setup_seconds + scores[3])
                start_scores = None

        for epoch in range(1, config.epochs + 1):
            began = time.perf_counter()
            order, targets = next_order.result() if next_order is not None else epoch_rows(epoch)
            if pipelined and epoch < config.epochs:  # queued after the last epoch's validation
                next_order = pool.submit(epoch_rows, epoch + 1)
            train_loss = trainer.train_epoch(features, labels, order, targets)
            train_seconds = time.perf_counter() - began
            if not pipelined:
                if settle(epoch, train_loss, train_seconds, trainer, evaluate(trainer) if has_val else no_scores):
                    break
                continue
            if epoch == config.epochs:  # the last: nothing trains meanwhile, so it validates here, on every core
                view, future = trainer, concurrent.futures.Future()
                future.set_result(evaluate(trainer))
            else:
                view = trainer.frozen()
                future = pool.submit(evaluate, view)
            record_start_when_scored()
            if pending is not None and settle(*pending[:4], pending[4].result()):
                future.result()  # this epoch came after the stop: let its validation finish, keep nothing of it
                pending = None
                break
            pending = (epoch, train_loss, train_seconds, view, future)
        record_start_when_scored()  # where no epoch ran
        if pending is not None:
            settle(*pending[:4], pending[4].result())
    return HeadResult(best_state, best_epoch, best_f1, time.perf_counter() - started, tuple(history))
