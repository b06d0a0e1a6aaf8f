"""What every phase-2 method takes (HeadInputs) and returns (HeadFit).

Every method's decision rule is returned as one linear layer on the raw cached features, `weight` (C x D) and
`bias` (C), which is exact for each of them: retrain, cRT and balanced softmax train one; tau-norm is the
phase-1 layer with rescaled rows and no bias; LWS rescales each class's row and bias; logit adjustment shifts
the bias; NCM's cosine rule is argmax_c <x, m_c / |m_c|>, because dividing x by |x| scales every class's score
by the same positive factor. So `train --phase2 METHOD` stores any method as phase2/model.pt, and `predict` and
`eval` use it unchanged. Confidences are the softmax of that layer's logits, as for every phase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from camtrap_fast.loss_config import LossConfig
from camtrap_fast.train.features import FeatureCache
from camtrap_fast.train.head_config import HeadConfig
from camtrap_fast.train.head_epochs import HeadResult

# Rows per matmul when a method scores many features at once (fp16 rows widened one block at a time).
BLOCK_ROWS = 16384
# Rows (weights, features) shorter than this count as this long when normalized: a zero row stays zero.
MIN_NORM = 1e-12


@dataclass(frozen=True, eq=False)
class HeadInputs:
    """A run's cached features and its phase-1 final layer: all any method fits on.

    head: the phase-1 layer (a baseline run's only layer); train for fitting, val (None when the shards have no
    val split) for hyper-parameters and early stopping. config, loss and seed: the run's (heads may change the seed).
    """

    head: nn.Linear
    train_features: torch.Tensor  # fp16 (or any float), N x D
    train_labels: torch.Tensor  # int64
    val_features: torch.Tensor | None
    val_labels: torch.Tensor | None
    config: HeadConfig = HeadConfig()
    loss: LossConfig = LossConfig()
    seed: int = 0

    @staticmethod
    def from_caches(head: nn.Linear, caches: dict[str, FeatureCache], config: HeadConfig, loss: LossConfig,
                    seed: int) -> "HeadInputs":
        val = caches.get("val")
        has_val = val is not None and len(val.labels) > 0
        return HeadInputs(head, caches["train"].features, caches["train"].labels,
                          val.features if has_val else None, val.labels if has_val else None, config, loss, seed)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @property
    def has_val(self) -> bool:
        return self.val_features is not None

    def train_counts(self) -> torch.Tensor:
        """Training rows per class (int64, C): the original, imbalanced distribution."""
        return torch.bincount(self.train_labels, minlength=self.num_classes)

    def phase1_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the phase-1 layer, fp32 copies (bias 0 when the layer has none)."""
        weight = self.head.weight.detach().float().cpu().clone()
        bias = (self.head.bias.detach().float().cpu().clone() if self.head.bias is not None
                else torch.zeros(len(weight)))
        return weight, bias


@dataclass(frozen=True, eq=False)
class HeadFit:
    """One fitted method: its linear layer, what it chose on val, and how long the fit took.

    parameter / value: the chosen hyper-parameter ("tau", 0.85) or the kept epoch ("best_epoch", 7); None for a
    method with neither (NCM). epoch_counts: images per class one training epoch saw (the report's Count (Epoch)
    column); None for the post-hoc methods, which train nothing. details: JSON-ready extras for metrics.json.
    """

    method: str
    weight: torch.Tensor  # fp32, C x D
    bias: torch.Tensor  # fp32, C
    parameter: str | None = None
    value: float | int | None = None
    val_macro_f1: float = math.nan
    epoch_counts: tuple[int, ...] | None = None
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def head_state(self) -> dict[str, torch.Tensor]:
        """Loads into the model's final nn.Linear."""
        return {"weight": self.weight, "bias": self.bias}

    @property
    def chosen(self) -> str:
        """The choice in words for tables: "tau 0.85", "epoch 7" or "" when there is none."""
        if self.parameter is None:
            return ""
        if self.parameter == "best_epoch":
            return f"epoch {self.value}"
        return f"{self.parameter} {self.value:g}"

    def report_fields(self) -> dict:
        """What metrics.json records about the fit, the same for `train --phase2` and `heads`."""
        tuned = self.parameter not in (None, "best_epoch")
        return {"method": self.method, "chosen": self.chosen,
                "best_epoch": self.value if self.parameter == "best_epoch" else None,
                "hyper_parameter": {self.parameter: self.value} if tuned else None,
                "val_macro_f1": self.val_macro_f1, "head_training_seconds": round(self.seconds, 3), **self.details}


def from_head_result(method: str, result: HeadResult, epoch_counts, details: dict) -> HeadFit:
    """A gradient method's HeadFit from train_head's (or LWS's) result."""
    history = [{"epoch": r.epoch, "train_loss": r.train_loss, "val_loss": r.val_loss, "val_macro_f1": r.val_macro_f1,
                "val_accuracy": r.val_accuracy} for r in result.history]
    return HeadFit(method, result.head_state["weight"].float(), result.head_state["bias"].float(), "best_epoch",
                   result.best_epoch, result.best_val_macro_f1, tuple(int(n) for n in np.asarray(epoch_counts)),
                   details={**details, "head_history": history})


def linear_logits(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """features @ weight.T + bias (fp32), widening fp16 features one block at a time."""
    if len(features) == 0:
        return torch.empty(0, len(weight))
    return torch.cat([torch.addmm(bias, rows.float(), weight.t()) for rows in features.split(BLOCK_ROWS)])
