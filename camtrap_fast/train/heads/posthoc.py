"""The post-hoc methods: the phase-1 final layer transformed, one parameter tau swept on val macro F1.

- tau-norm (Kang et al. 2020): each class's weight row divided by its norm to the power tau, bias dropped.
  tau 0 is the layer without its bias, tau 1 gives every class a unit-norm row.
- logit-adjust (Menon et al. 2021): argmax_y f_y(x) - tau * log pi_y, pi the training class priors; as a linear
  layer, bias - tau * log pi. tau 0 is the layer itself, tau 1 the Bayes-consistent correction for a balanced
  error when f estimates the training posteriors.

Both sweep tau over 0, 0.05, ..., 2 (TAU_GRID) and keep the best val macro F1, ties going to the smaller tau (the
smaller change to the layer). Every tau's val logits are one column scaling or shift of a single matmul, so the
whole sweep costs one pass over the val features. Without a val split tau is fixed at 1 (said in the report).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from camtrap_fast.metrics import macro_f1
from camtrap_fast.train.heads.contract import MIN_NORM, HeadFit, HeadInputs, linear_logits

TAU_GRID = tuple(round(i * 0.05, 2) for i in range(41))  # 0 to 2 in steps of 0.05, exact decimals
UNTUNED_TAU = 1.0


def sweep(val_logits: torch.Tensor, val_labels: torch.Tensor, adjust: Callable[[torch.Tensor, float], torch.Tensor],
          num_classes: int) -> tuple[float, float, list[tuple[float, float]]]:
    """(best tau, its val macro F1, [(tau, val macro F1)] for TAU_GRID); adjust(logits, tau) -> logits."""
    truth = val_labels.numpy()
    curve = [(tau, macro_f1(truth, adjust(val_logits, tau).argmax(1).numpy(), num_classes)) for tau in TAU_GRID]
    best_tau, best_f1 = max(curve, key=lambda point: point[1])  # max keeps the first (smallest tau) of ties
    return best_tau, best_f1, curve


def _choose(inputs: HeadInputs, weight: torch.Tensor, bias: torch.Tensor, adjust) -> tuple[float, float, dict]:
    if not inputs.has_val:
        return UNTUNED_TAU, math.nan, {"note": f"no val split: tau fixed at {UNTUNED_TAU:g}, not tuned"}
    val_logits = linear_logits(weight, bias, inputs.val_features)
    tau, f1, curve = sweep(val_logits, inputs.val_labels, adjust, inputs.num_classes)
    return tau, f1, {"tau_curve": [[t, f] for t, f in curve]}


def fit_tau_norm(inputs: HeadInputs) -> HeadFit:
    weight, _ = inputs.phase1_layer()
    norms = weight.norm(dim=1).clamp_min(MIN_NORM)
    no_bias = torch.zeros(len(weight))
    # logits_tau = x . w_c / |w_c|^tau: the tau-0 logits with column c divided by |w_c|^tau.
    tau, f1, details = _choose(inputs, weight, no_bias, lambda logits, t: logits / norms.pow(t))
    return HeadFit("tau-norm", weight / norms.pow(tau)[:, None], no_bias, "tau", tau, f1, details=details)


def log_priors(train_counts: torch.Tensor) -> torch.Tensor:
    """log pi_y from training counts; a class without training rows counts as 1, keeping the offset finite."""
    counts = train_counts.clamp_min(1).to(torch.float64)
    return torch.log(counts / counts.sum()).to(torch.float32)


def fit_logit_adjust(inputs: HeadInputs) -> HeadFit:
    weight, bias = inputs.phase1_layer()
    log_pi = log_priors(inputs.train_counts())
    tau, f1, details = _choose(inputs, weight, bias, lambda logits, t: logits - t * log_pi)
    return HeadFit("logit-adjust", weight, bias - tau * log_pi, "tau", tau, f1, details=details)
