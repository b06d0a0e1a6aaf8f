"""Class counts + SamplingSpec -> SamplingPlan: exactly how many samples each class contributes per epoch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from camtrap_fast.sampling.spec import SamplingSpec


@dataclass(frozen=True)
class SamplingPlan:
    """Per-class image counts and per-epoch targets, in class-index order (class i is label i)."""

    classes: tuple[str, ...]
    original: tuple[int, ...]
    target: tuple[int, ...]
    spec: SamplingSpec = SamplingSpec()

    def __post_init__(self) -> None:
        if not (len(self.classes) == len(self.original) == len(self.target)):
            raise ValueError(
                f"SamplingPlan has {len(self.classes)} classes, {len(self.original)} original and "
                f"{len(self.target)} target counts; give one of each per class"
            )
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("SamplingPlan class names repeat; give each class once, in class-index order")
        for name, n, t in zip(self.classes, self.original, self.target):
            if n < 0 or t < 0:
                raise ValueError(f"class {name!r}: counts must be >= 0 (original {n}, target {t})")
            if n == 0 and t > 0:
                raise ValueError(f"class {name!r} has no images, so it cannot contribute {t}; set its target to 0")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def total_original(self) -> int:
        return sum(self.original)

    @property
    def total_target(self) -> int:
        return sum(self.target)

    def ratios(self) -> tuple[float, ...]:
        """target / original per class; nan for classes with no images."""
        return tuple(t / n if n else float("nan") for n, t in zip(self.original, self.target))

    def as_dict(self) -> dict:
        return {
            "classes": {c: {"original": n, "target": t} for c, n, t in zip(self.classes, self.original, self.target)},
            "total_original": self.total_original,
            "total_target": self.total_target,
        }


def class_targets(counts: np.ndarray, spec: SamplingSpec) -> np.ndarray:
    """Per-class epoch targets (int64) for per-class image counts, by the study's rules."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError("class counts must be a 1-D array of non-negative integers, one per class")
    if spec.sqrt:
        return _sqrt_targets(counts)
    if spec.balanced is not None:
        return np.where(counts > 0, spec.balanced, 0).astype(np.int64)
    target = counts.copy()
    if spec.ros_cap is not None:
        bounds = np.array([bound for bound, _ in spec.ros_ratios], dtype=np.float64)
        ratios = np.array([ratio for _, ratio in spec.ros_ratios], dtype=np.int64)
        # side="right": a class of exactly 100 images falls in the [100, 500) band, as in the study.
        ratio = ratios[np.searchsorted(bounds, counts, side="right")]
        target = np.where(counts < spec.ros_cap, np.minimum(counts * ratio, spec.ros_cap), counts)
    if spec.rus_cap is not None:
        target = np.minimum(target, spec.rus_cap)
    return target


def _sqrt_targets(counts: np.ndarray) -> np.ndarray:
    total = int(counts.sum())
    weights = np.sqrt(counts.astype(np.float64))
    if total == 0:
        return np.zeros_like(counts)
    quota = total * weights / weights.sum()
    target = np.floor(quota).astype(np.int64)
    # Largest-remainder rounding keeps the total exact; floors never overshoot, so `short` is in [0, classes).
    short = total - int(target.sum())
    remainder = np.where(counts > 0, quota - target, -1.0)  # empty classes never receive a rounding unit
    target[np.argsort(-remainder, kind="stable")[:short]] += 1
    return target


def plan_sampling(class_counts: Mapping[str, int], spec: SamplingSpec) -> SamplingPlan:
    """Plan for classes in the mapping's order (which must be class-index order)."""
    counts = np.array([int(n) for n in class_counts.values()], dtype=np.int64)
    target = class_targets(counts, spec)
    return SamplingPlan(
        classes=tuple(class_counts),
        original=tuple(int(n) for n in counts),
        target=tuple(int(t) for t in target),
        spec=spec,
    )
