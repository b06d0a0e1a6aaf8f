"""The gradient-trained methods that retrain a whole linear layer, all through train.head_training's fused loop.

- retrain: the study's phase 2: the phase-1 layer retrained on the original (imbalanced) data, with the run's
  loss, a shuffle of every row per epoch.
- crt (Kang et al. 2020): a freshly initialized layer trained with class-balanced sampling and cross-entropy.
- balanced-softmax (Ren et al. 2020): the phase-1 layer retrained on the original data with cross-entropy on
  logits + log n_y; plain logits at test time. It differs from retrain only in the loss, so the pair isolates it.

All use the run's HeadConfig (Adam, lr, batch, epochs) and early stopping on val macro F1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from camtrap_fast.loss_config import LossConfig
from camtrap_fast.sampling import SamplingSpec, epoch_order, plan_sampling
from camtrap_fast.train.head_training import train_head
from camtrap_fast.train.heads.contract import HeadFit, HeadInputs, from_head_result


def balanced_epochs(labels: torch.Tensor, num_classes: int, seed: int) -> tuple[Callable[[int], torch.Tensor], np.ndarray]:
    """(order_for_epoch, images per class per epoch) for class-balanced training on these rows.

    Every class with training rows contributes exactly ceil(N / K) rows per epoch (K such classes), so an
    epoch has about as many steps as an epoch over the original data; the rows are drawn by the sampler's own
    rules (`balanced:N`: each row floor(t / n) times plus a fresh random subset once more) and uniformly
    shuffled. Every position of the shuffled epoch therefore holds each class with probability exactly 1/K:
    each batch is class-balanced in expectation (its own counts vary, as a random draw's do).
    """
    labels_np = labels.cpu().numpy().astype(np.int64)
    counts = np.bincount(labels_np, minlength=num_classes)
    per_class = -(-len(labels_np) // int((counts > 0).sum()))
    plan = plan_sampling({str(c): int(n) for c, n in enumerate(counts)}, SamplingSpec(balanced=per_class))

    def order_for_epoch(epoch: int) -> torch.Tensor:
        return torch.from_numpy(epoch_order(labels_np, plan, seed, epoch))

    return order_for_epoch, np.asarray(plan.target, dtype=np.int64)


def fresh_head(in_features: int, num_classes: int, seed: int) -> nn.Linear:
    """nn.Linear's own initialization (weights and bias uniform in +-1/sqrt(in_features)), from a generator
    seeded by `seed` rather than the global one, so a cRT fit depends on its seed alone."""
    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(in_features)
    head = nn.Linear(in_features, num_classes)
    with torch.no_grad():
        head.weight.uniform_(-bound, bound, generator=generator)
        head.bias.uniform_(-bound, bound, generator=generator)
    return head


def _train(inputs: HeadInputs, head: nn.Linear, loss: LossConfig, **kwargs):
    return train_head(head, inputs.train_features, inputs.train_labels, inputs.val_features, inputs.val_labels,
                      inputs.config, loss, inputs.seed, **kwargs)


def fit_retrain(inputs: HeadInputs) -> HeadFit:
    result = _train(inputs, inputs.head, inputs.loss)
    return from_head_result("retrain", result, inputs.train_counts(), {
        "init": "phase-1 layer", "sampling": "original", "loss": inputs.loss.name})


def fit_crt(inputs: HeadInputs) -> HeadFit:
    order_for_epoch, per_epoch = balanced_epochs(inputs.train_labels, inputs.num_classes, inputs.seed)
    head = fresh_head(inputs.head.in_features, inputs.num_classes, inputs.seed)
    result = _train(inputs, head, LossConfig(), order_for_epoch=order_for_epoch)
    return from_head_result("crt", result, per_epoch, {
        "init": "fresh (nn.Linear's uniform init, seeded)", "sampling": "class-balanced", "loss": "ce"})


def balanced_softmax_offset(train_counts: torch.Tensor) -> torch.Tensor:
    """log n_y per class; a class without training rows counts as 1 (offset 0), keeping every logit finite."""
    return torch.log(train_counts.clamp_min(1).to(torch.float64)).to(torch.float32)


def fit_balanced_softmax(inputs: HeadInputs) -> HeadFit:
    counts = inputs.train_counts()
    result = _train(inputs, inputs.head, LossConfig(), logit_offset=balanced_softmax_offset(counts))
    return from_head_result("balanced-softmax", result, counts, {
        "init": "phase-1 layer", "sampling": "original", "loss": "ce on logits + log n_y"})
