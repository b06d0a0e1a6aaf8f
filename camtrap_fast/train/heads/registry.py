"""Method name -> fit function: the one table `train --two-phase --phase2 METHOD` and `heads` both go through."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import torch

from camtrap_fast.errors import UserError
from camtrap_fast.train.head_config import PHASE2_METHODS
from camtrap_fast.train.head_training import torch_threads
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


def fit_method(name: str, inputs: HeadInputs) -> HeadFit:
    """Fit one method on CPU with the run's thread count (1 by default: deterministic sums, and the fits are
    too small to gain from more); `seconds` is the whole fit's wall time."""
    started = time.perf_counter()
    with torch_threads(inputs.config.num_threads, torch.device("cpu")), torch.no_grad():
        fit = METHODS[name](inputs)
    return dataclasses.replace(fit, seconds=time.perf_counter() - started)


def parse_methods(text: str | None) -> tuple[str, ...]:
    """`all` (or None) -> every method; `m1,m2` -> those, in the order given; UserError naming --methods."""
    if text is None or text.strip() == "all":
        return PHASE2_METHODS
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise UserError(f"--methods {text}: unknown method {unknown[0] if unknown else '(none)'!r}; "
                        f"give all or a comma-separated list of {', '.join(PHASE2_METHODS)}")
    if len(set(names)) != len(names):
        raise UserError(f"--methods {text}: a method is named twice")
    return names
