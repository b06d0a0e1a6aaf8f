"""Training losses: cross-entropy, class-weighted cross-entropy, softmax focal loss and TF Addons' sigmoid focal
loss, built from a `LossConfig` (`loss_config`, where the class weights are computed).

Sigmoid focal loss lives here whole: the per-sample loss (phase 1 trains through autograd on it) and its
closed-form derivative in the logits (the fused phase-2 loop's gradient), so the two are read and tested side by
side (tests/test_losses.py checks both against a NumPy transcription of TF Addons' formula)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from camtrap_fast.loss_config import LOSSES, WEIGHT_SCHEMES, LossConfig, class_weight_vector

__all__ = ["FOCAL_MIN_MARGIN", "LOSSES", "WEIGHT_SCHEMES", "FocalLoss", "LossConfig", "SigmoidFocalLoss",
           "build_loss", "class_weight_vector", "sigmoid_focal_dlogits", "sigmoid_focal_per_sample"]

# (1 - p_t) is clamped here so that (1 - p_t) ** gamma with gamma < 1 has a finite gradient at p_t == 1.
FOCAL_MIN_MARGIN = 1e-12


class _FocalBase(nn.Module):
    """What both focal losses hold: gamma, and alpha (C,) as a buffer (None: no alpha factor)."""

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={'per-class' if self.alpha is not None else None}"


class FocalLoss(_FocalBase):
    """Softmax focal loss (Lin et al. 2017): mean over the batch of -alpha_t (1 - p_t)^gamma log p_t.

    With gamma = 0 and alpha None it is cross-entropy. Unlike weighted cross-entropy, the mean
    divides by the batch size, not by the sum of the weights.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        margin = (-torch.expm1(log_p)).clamp_min(FOCAL_MIN_MARGIN)  # 1 - p_t, computed without cancellation
        loss = -margin.pow(self.gamma) * log_p
        if self.alpha is not None:
            loss = loss * self.alpha[target]
        return loss.mean()


def _sign_and_factor(logits: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor | None):
    """(+1 on each row's target column, -1 elsewhere; alpha_t, or None without alpha) for one-hot targets."""
    sign = torch.full_like(logits, -1.0).scatter_(1, target[:, None], 1.0)
    if alpha is None:
        return sign, None
    alpha = alpha.to(device=logits.device, dtype=logits.dtype)
    # alpha_t = y alpha + (1 - y)(1 - alpha): 1 - alpha everywhere, alpha on the target column
    factor = (1.0 - alpha).expand_as(logits).clone()
    return sign, factor.scatter_(1, target[:, None], alpha[target][:, None])


def sigmoid_focal_per_sample(logits: torch.Tensor, target: torch.Tensor, gamma: float,
                             alpha: torch.Tensor | None = None) -> torch.Tensor:
    """TF Addons' `sigmoid_focal_crossentropy(y_true=one_hot(target), y_pred=logits, alpha, gamma, from_logits=True)`:
    per sample (N,), the SUM over the C classes of alpha_t (1 - p_t)^gamma BCE(y, sigmoid(z)), with p_t = p for the
    target class and 1 - p for the others, alpha_t = alpha / 1 - alpha likewise (alpha None: factor 1).

    Written in u = +z (target column) / -z (others), so p_t = sigmoid(u), 1 - p_t = sigmoid(-u) and
    BCE = -log sigmoid(u) = softplus(-u): no cancellation and no log of 0 at any logit. (1 - p_t) is clamped at
    FOCAL_MIN_MARGIN only so that autograd's derivative of (1 - p_t)^gamma stays finite for gamma < 1."""
    z = logits.float()
    sign, factor = _sign_and_factor(z, target, alpha)
    u = z * sign
    loss = -F.logsigmoid(u)
    if gamma != 0:
        loss = loss * torch.sigmoid(-u).clamp_min(FOCAL_MIN_MARGIN).pow(gamma)
    if factor is not None:
        loss = loss * factor
    return loss.sum(1)


def sigmoid_focal_dlogits(logits: torch.Tensor, target: torch.Tensor, gamma: float,
                          alpha: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """d sigmoid_focal_per_sample(z)_i / d z_ij in closed form (N x C, float32), what the fused phase-2 loop steps on.

    Per element, with u = s z (s = +1 on the target column, -1 elsewhere), q = p_t = sigmoid(u):
        L = -alpha_t (1 - q)^gamma log q,   dq/dz = s q (1 - q)
        dL/dz = -s alpha_t (1 - q)^gamma ((1 - q) - gamma q log q)
    (gamma 0: p - y, the BCE gradient). No negative power of (1 - q) appears, so no clamp is needed here; where
    the loss's clamp is active (1 - q < 1e-12) both are 0 to within 1e-12^gamma."""
    z = logits.float()
    sign, factor = _sign_and_factor(z, target, alpha)
    u = z * sign
    margin = torch.sigmoid(-u)  # 1 - q
    grad = margin.clone() if gamma == 0 else margin - gamma * torch.sigmoid(u) * F.logsigmoid(u)
    if gamma != 0:
        grad.mul_(margin.pow(gamma))
    grad.mul_(sign).neg_()
    if factor is not None:
        grad.mul_(factor)
    if out is None:
        return grad
    return out.copy_(grad)


class SigmoidFocalLoss(_FocalBase):
    """TF Addons' SigmoidFocalCrossEntropy on one-hot targets, from logits: the mean over the batch of
    `sigmoid_focal_per_sample` (each sample's loss summed over classes, as TF Addons' reduce_sum over the last axis).

    alpha (C,): each class's positive-term factor (TF Addons' scalar alpha is the same value for every class);
    None: no alpha factor (TF Addons' alpha=None or 0)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_per_sample(logits, target, self.gamma, self.alpha).mean()


def build_loss(config: LossConfig, class_counts: Sequence[int] | np.ndarray | None = None) -> nn.Module:
    """The loss module for logits (N x C) and integer targets (N); class weights from `class_counts`."""
    if config.name == "sigmoid-focal":
        if class_counts is None:
            raise ValueError("sigmoid-focal needs the number of classes; pass class_counts")
        return SigmoidFocalLoss(config.focal_gamma, config.positive_alpha(len(class_counts)))
    weights = config.per_class_weights(class_counts)
    if config.name == "focal":
        return FocalLoss(config.focal_gamma, weights)
    # weighted mean: torch divides by the summed weights of the batch's targets
    return nn.CrossEntropyLoss(weight=weights)
