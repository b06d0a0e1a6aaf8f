"""What the phase-2 head's closed-form gradient needs to know about its loss (train.head_training's steps, torch's
and the compiled ones, read these terms; the loss's own formulas stay in camtrap_fast.losses and headloop.c)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from camtrap_fast.losses import LossConfig


@dataclass(frozen=True)
class LossTerms:
    """What the closed-form gradient needs: d loss_i / d logits_i = s_i * c_i * (softmax_i - onehot_i), with
    c_i the focal factor (1 for gamma 0) and s_i = w_y / sum of the batch's w_y (weighted mean) or
    w_y / batch size (plain mean; w = 1 when class_weights is None).

    logit_offset: a per-class constant added to the logits in training only (balanced softmax: log n_y). The
    loss sees logits + offset, so the formula above holds with the softmax of the offset logits; since
    d logits / d bias = 1, the offset is carried inside the trained bias (bias + offset) and taken out again
    for validation and the result: the same updates at no cost per step.

    sigmoid: TF Addons' sigmoid focal loss instead (one-vs-all, not a softmax): d loss_i / d logits_i is
    `losses.sigmoid_focal_dlogits` / batch size, with positive_alpha its per-class alpha (None: no alpha factor)."""

    gamma: float = 0.0
    class_weights: torch.Tensor | None = None
    weighted_mean: bool = False
    logit_offset: torch.Tensor | None = None
    sigmoid: bool = False
    positive_alpha: torch.Tensor | None = None


def loss_terms(loss: LossConfig, class_counts: np.ndarray) -> LossTerms:
    if loss.name == "sigmoid-focal":
        return LossTerms(loss.focal_gamma, sigmoid=True, positive_alpha=loss.positive_alpha(len(class_counts)))
    weights = loss.per_class_weights(class_counts)
    if loss.name == "focal":
        return LossTerms(loss.focal_gamma, weights)
    return LossTerms(0.0, weights, loss.name == "weighted-ce")
