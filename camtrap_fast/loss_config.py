"""The per-class loss weights and the choice of loss, without torch at import time (the command line reads
these defaults for `--help`). The loss modules themselves are in `losses`.

Class weights come from training-set class counts. A class with no training images
gets weight 0: it never occurs as a target, and a finite weight for it would only
distort the normalization of the classes that do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from camtrap_fast.errors import ConfigError

if TYPE_CHECKING:
    import torch

LOSSES = ("ce", "focal", "weighted-ce")
WEIGHT_SCHEMES = ("inverse-frequency", "effective-number")

@dataclass(frozen=True)
class LossConfig:
    """Which loss to train with.

    focal_alpha: None (no class weighting), a number (a constant factor for every class, as in the
    RetinaNet formulation; for a softmax loss it only rescales the loss), or "inverse-frequency".
    class_weights / beta: how weighted-ce weights classes ("effective-number" uses beta).
    """

    name: str = "ce"
    focal_gamma: float = 2.0
    focal_alpha: float | str | None = None
    class_weights: str = "inverse-frequency"
    beta: float = 0.999

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise ConfigError("name", self.name, f"unknown loss; choose one of {', '.join(LOSSES)}")
        if not self.focal_gamma >= 0:
            raise ConfigError("focal_gamma", self.focal_gamma, "must be >= 0")
        alpha = self.focal_alpha
        if isinstance(alpha, str):
            if alpha != "inverse-frequency":
                raise ConfigError("focal_alpha", alpha, "use a number > 0, inverse-frequency or nothing")
        elif alpha is not None and (isinstance(alpha, bool) or not alpha > 0):
            raise ConfigError("focal_alpha", alpha, "must be > 0, inverse-frequency or nothing")
        if self.class_weights not in WEIGHT_SCHEMES:
            raise ConfigError("class_weights", self.class_weights, f"choose one of {', '.join(WEIGHT_SCHEMES)}")
        if not 0 <= self.beta < 1:
            raise ConfigError("beta", self.beta, "must be in [0, 1) for effective-number weights")

    def per_class_weights(self, class_counts: Sequence[int] | np.ndarray | None) -> torch.Tensor | None:
        """The per-class factor the loss applies (weighted-ce weights or focal alpha); None when uniform."""
        if self.name == "ce":
            return None
        if self.name == "weighted-ce":
            return class_weight_vector(_require_counts(class_counts, self), self.class_weights, self.beta)
        if self.focal_alpha is None:
            return None
        if self.focal_alpha == "inverse-frequency":
            return class_weight_vector(_require_counts(class_counts, self), "inverse-frequency")
        counts = None if class_counts is None else np.asarray(class_counts)
        if counts is None:
            raise ValueError("a constant focal_alpha needs the number of classes; pass class_counts")
        import torch

        return torch.full((len(counts),), float(self.focal_alpha), dtype=torch.float32)


def _require_counts(class_counts, config: LossConfig) -> np.ndarray:
    if class_counts is None:
        raise ValueError(f"loss {config.name!r} with these settings weights classes; pass the training class_counts")
    return np.asarray(class_counts)


def class_weight_vector(
    class_counts: Sequence[int] | np.ndarray, scheme: str = "inverse-frequency", beta: float = 0.999
) -> torch.Tensor:
    """Per-class loss weights (float32) from training counts; 0 for classes with no training images.

    inverse-frequency: w_c = N / (K * n_c) over the K classes with images, so the mean weight over
    the training distribution, sum_c (n_c / N) * w_c, is exactly 1.
    effective-number (Cui et al. 2019): w_c proportional to (1 - beta) / (1 - beta ** n_c), scaled to
    sum to K (the number of classes when every class has images).
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("class_counts must be a non-empty 1-D sequence of counts >= 0, one per class")
    present = counts > 0
    if not present.any():
        raise ValueError("class_counts are all 0: no class has training images to weight")
    weights = np.zeros_like(counts)
    if scheme == "inverse-frequency":
        weights[present] = counts.sum() / (present.sum() * counts[present])
    elif scheme == "effective-number":
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        raw = (1.0 - beta) / (1.0 - np.power(beta, counts[present]))
        weights[present] = raw * present.sum() / raw.sum()
    else:
        raise ValueError(f"unknown class weight scheme {scheme!r}; choose one of {', '.join(WEIGHT_SCHEMES)}")
    import torch

    return torch.from_numpy(weights.astype(np.float32))
