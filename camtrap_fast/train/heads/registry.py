"""Method name -> fit function: the one table `train --two-phase --phase2 METHOD` and `heads` both go through."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch

from camtrap_fast.train.head_config import PHASE2_METHODS, parse_methods
from camtrap_fast.train.parallelism import torch_threads
from camtrap_fast.train.heads.contract import HeadFit, HeadInputs
from camtrap_fast.train.heads.gradient import fit_balanced_softmax, fit_crt, fit_retrain
from camtrap_fast.train.heads.lws import fit_lws
from camtrap_fast.train.heads.ncm import fit_ncm
from camtrap_fast.train.heads.posthoc import fit_logit_adjust, fit_tau_norm

METHODS: dict[str, Callable[[HeadInputs], HeadFit]] = {
    "retrain": fit_retrain,
    "crt": fit_crt,
    "tau-norm": fit_tau_norm,
    "lws": fit_lws,
    "ncm": fit_ncm,
    "logit-adjust": fit_logit_adjust,
    "balanced-softmax": fit_balanced_softmax,
}
GRADIENT_METHODS = ("retrain", "crt", "lws", "balanced-softmax")
POSTHOC_METHODS = ("tau-norm", "logit-adjust", "ncm")
assert tuple(METHODS) == PHASE2_METHODS  # parse_methods (head_config) reads the names without torch
__all__ = ["METHODS", "GRADIENT_METHODS", "POSTHOC_METHODS", "fit_method", "parse_methods"]


def fit_method(name: str, inputs: HeadInputs) -> HeadFit:
    """Fit one method on CPU with the run's thread count (1 by default: deterministic sums, and the fits are
    too small to gain from more); `seconds` is the whole fit's wall time."""
    started = time.perf_counter()
    with torch_threads(inputs.config.num_threads, torch.device("cpu")), torch.no_grad():
        fit = METHODS[name](inputs)
    return dataclasses.replace(fit, seconds=time.perf_counter() - started)
