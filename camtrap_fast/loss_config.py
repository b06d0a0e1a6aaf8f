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

LOSSES = ("ce", "focal", "weighted-ce", "sigmoid-focal")
WEIGHT_SCHEMES = ("inverse-frequency", "effective-number")

@dataclass(frozen=True)
class LossConfig:
    """Which loss to train with.

    focal (softmax focal loss) focal_alpha: None (no class weighting), a number (a constant factor for every
    class, as in the RetinaNet formulation; for a softmax loss it only rescales the loss), "inverse-frequency",
    or one number > 0 per class (in class order).
    sigmoid-focal (TF Addons' SigmoidFocalCrossEntropy, `losses.sigmoid_focal_per_sample`) focal_alpha: None (no
    alpha factor), a number in (0, 1] (alpha on every class's positive term, 1 - alpha on its negatives, as TF
    Addons), or one number in [0, 1] per class.
    class_weights / beta: how weighted-ce weights classes ("effective-number" uses beta).
    """

    name: str = "ce"
    focal_gamma: float = 2.0
    focal_alpha: float | str | tuple[float, ...] | None = None
    class_weights: str = "inverse-frequency"
    beta: float = 0.999

    def __post_init__(self) -> None:
        if self.name not in LOSSES:
            raise ConfigError("name", self.name, f"unknown loss; choose one of {', '.join(LOSSES)}")
        if not self.focal_gamma >= 0:
            raise ConfigError("focal_gamma", self.focal_gamma, "must be >= 0")
        if isinstance(self.focal_alpha, list):  # config.json stores a per-class alpha as a list
            object.__setattr__(self, "focal_alpha", tuple(self.focal_alpha))
        self._check_alpha()
        if self.class_weights not in WEIGHT_SCHEMES:
            raise ConfigError("class_weights", self.class_weights, f"choose one of {', '.join(WEIGHT_SCHEMES)}")
        if not 0 <= self.beta < 1:
            raise ConfigError("beta", self.beta, "must be in [0, 1) for effective-number weights")

    def _check_alpha(self) -> None:
        alpha, sigmoid = self.focal_alpha, self.name == "sigmoid-focal"
        if isinstance(alpha, str):
            if sigmoid:
                raise ConfigError("focal_alpha", alpha, "sigmoid-focal takes a number in (0, 1] (TF Addons' alpha; "
                                  "0.25 is its default) or one number in [0, 1] per class")
            if alpha != "inverse-frequency":
                raise ConfigError("focal_alpha", alpha, "use a number > 0, inverse-frequency or nothing")
        elif isinstance(alpha, tuple):
            if not alpha or any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in alpha):
                raise ConfigError("focal_alpha", alpha, "give one number per class, joined by commas")
            if sigmoid and not all(0 <= a <= 1 for a in alpha):
                raise ConfigError("focal_alpha", ",".join(map(str, alpha)), "sigmoid-focal's per-class alphas "
                                  "must be in [0, 1] (alpha weights the positive term, 1 - alpha the negatives)")
            if not sigmoid and not all(a > 0 for a in alpha):
                raise ConfigError("focal_alpha", ",".join(map(str, alpha)), "per-class alphas must be > 0")
        elif alpha is not None:
            if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
                raise ConfigError("focal_alpha", alpha, "must be a number, inverse-frequency or nothing")
            if sigmoid and not 0 < alpha <= 1:
                # TF Addons skips the alpha factor for alpha == 0 (`if alpha:`): leaving it out says that plainly.
                raise ConfigError("focal_alpha", alpha, "must be in (0, 1] for sigmoid-focal (leave it out for no "
                                  "alpha factor, which is what TF Addons does with alpha 0)")
            if not alpha > 0:
                raise ConfigError("focal_alpha", alpha, "must be > 0, inverse-frequency or nothing")

    def alpha_classes(self) -> int | None:
        """How many classes a per-class focal_alpha names (None when it is not per class)."""
        return len(self.focal_alpha) if isinstance(self.focal_alpha, tuple) else None

    def positive_alpha(self, num_classes: int) -> torch.Tensor | None:
        """sigmoid-focal: each class's alpha (C,) float32, the factor of its positive term (1 - alpha of its
        negatives); None without an alpha factor."""
        if self.focal_alpha is None:
            return None
        import torch

        if isinstance(self.focal_alpha, tuple):
            if len(self.focal_alpha) != num_classes:
                raise ValueError(f"focal_alpha has {len(self.focal_alpha)} values for {num_classes} classes")
            return torch.tensor(self.focal_alpha, dtype=torch.float32)
        return torch.full((num_classes,), float(self.focal_alpha), dtype=torch.float32)

    def per_class_weights(self, class_counts: Sequence[int] | np.ndarray | None) -> torch.Tensor | None:
        """The per-class factor the loss applies (weighted-ce weights or focal alpha); None when uniform.
        sigmoid-focal weights each class's terms by `positive_alpha` instead."""
        if self.name in ("ce", "sigmoid-focal"):
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

        if isinstance(self.focal_alpha, tuple):
            if len(self.focal_alpha) != len(counts):
                raise ValueError(f"focal_alpha has {len(self.focal_alpha)} values for {len(counts)} classes")
            return torch.tensor(self.focal_alpha, dtype=torch.float32)
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
