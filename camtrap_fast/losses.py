"""Training losses: cross-entropy, class-weighted cross-entropy and softmax focal loss, built from a
`LossConfig` (`loss_config`, where the class weights are computed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from camtrap_fast.loss_config import LOSSES, WEIGHT_SCHEMES, LossConfig, class_weight_vector

__all__ = ["FOCAL_MIN_MARGIN", "LOSSES", "WEIGHT_SCHEMES", "FocalLoss", "LossConfig", "build_loss",
           "class_weight_vector"]

# (1 - p_t) is clamped here so that (1 - p_t) ** gamma with gamma < 1 has a finite gradient at p_t == 1.
FOCAL_MIN_MARGIN = 1e-12


class FocalLoss(nn.Module):
    """Softmax focal loss (Lin et al. 2017): mean over the batch of -alpha_t (1 - p_t)^gamma log p_t.

    With gamma = 0 and alpha None it is cross-entropy. Unlike weighted cross-entropy, the mean
    divides by the batch size, not by the sum of the weights.
    """

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        margin = (-torch.expm1(log_p)).clamp_min(FOCAL_MIN_MARGIN)  # 1 - p_t, computed without cancellation
        loss = -margin.pow(self.gamma) * log_p
        if self.alpha is not None:
            loss = loss * self.alpha[target]
        return loss.mean()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={'per-class' if self.alpha is not None else None}"


def build_loss(config: LossConfig, class_counts: Sequence[int] | np.ndarray | None = None) -> nn.Module:
    """The loss module for logits (N x C) and integer targets (N); class weights from `class_counts`."""
    weights = config.per_class_weights(class_counts)
    if config.name == "focal":
        return FocalLoss(config.focal_gamma, weights)
    # weighted mean: torch divides by the summed weights of the batch's targets
    return nn.CrossEntropyLoss(weight=weights)
