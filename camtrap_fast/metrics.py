"""Labels -> Metrics: accuracy, macro and per-class precision/recall/F1, confusion matrix, rare/common-class accuracy.

Pure numpy and built on one bincount, so 155k predictions over 52 classes take about a millisecond.

Conventions (they match scikit-learn's precision_recall_fscore_support with zero_division=0):
- macro averages run over the classes that occur in y_true or y_pred, not over every class name;
- a class that is predicted but never true has recall 0; one that is true but never predicted has precision 0;
- a class that is neither true nor predicted is undefined: NaN per-class values, left out of the macro means.

Rarest / commonest k accuracy: rank the classes that have test samples by training count (ties by
class index), take the k rarest (or commonest), and report the fraction of the test samples whose
true class is one of them that were predicted correctly (their pooled recall). None when fewer than
k classes have test samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TAIL_SIZES = (2, 5, 10)


@dataclass(frozen=True, eq=False)
class Predictions:
    """One model's predictions: integer class indices, optional sample keys and confidences."""

    y_true: np.ndarray
    y_pred: np.ndarray
    keys: tuple[str, ...] | None = None
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        # accept sequences and tensors; store int64 / float64 arrays
        object.__setattr__(self, "y_true", np.asarray(self.y_true, dtype=np.int64))
        object.__setattr__(self, "y_pred", np.asarray(self.y_pred, dtype=np.int64))
        if self.confidence is not None:
            object.__setattr__(self, "confidence", np.asarray(self.confidence, dtype=np.float64))
        if self.keys is not None:
            object.__setattr__(self, "keys", tuple(self.keys))
        n = len(self.y_true)
        if self.y_true.ndim != 1 or self.y_pred.shape != (n,):
            raise ValueError(f"y_true and y_pred must be 1-D and the same length, got {self.y_true.shape} "
                             f"and {self.y_pred.shape}")
        if self.keys is not None and len(self.keys) != n:
            raise ValueError(f"{len(self.keys)} keys for {n} predictions; give one key per prediction")
        if self.confidence is not None and self.confidence.shape != (n,):
            raise ValueError(f"confidence has shape {self.confidence.shape}; give one value per prediction ({n})")


@dataclass(frozen=True, eq=False)
class Metrics:
    """Classification metrics for one evaluation; per-class arrays are in class-index order."""

    class_names: tuple[str, ...]
    confusion: np.ndarray  # int64 (C x C): rows are true classes, columns predicted classes
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    precision: np.ndarray  # float64 (C,), NaN for classes neither true nor predicted
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # int64 (C,): test samples per true class
    train_counts: np.ndarray | None = None  # int64 (C,)
    rarest_accuracy: dict[int, float | None] | None = None  # k -> accuracy of the k rarest classes
    commonest_accuracy: dict[int, float | None] | None = None

    def __post_init__(self) -> None:
        c = len(self.class_names)
        if self.confusion.shape != (c, c):
            raise ValueError(f"confusion matrix is {self.confusion.shape} for {c} class names; "
                             "it must be square, one row per class")
        for name in ("precision", "recall", "f1", "support"):
            if getattr(self, name).shape != (c,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}; give one value per class ({c})")
        if self.train_counts is not None and self.train_counts.shape != (c,):
            raise ValueError(f"train_counts has shape {self.train_counts.shape}; give one count per class ({c})")

    @property
    def num_samples(self) -> int:
        return int(self.support.sum())

    def per_class(self) -> dict[str, dict[str, float | int | None]]:
        """{class: {precision, recall, f1, count_train, count_test}}, None where undefined or unknown."""
        rows = {}
        for i, name in enumerate(self.class_names):
            rows[name] = {
                "precision": _float_or_none(self.precision[i]),
                "recall": _float_or_none(self.recall[i]),
                "f1": _float_or_none(self.f1[i]),
                "count_train": None if self.train_counts is None else int(self.train_counts[i]),
                "count_test": int(self.support[i]),
            }
        return rows

    def as_dict(self) -> dict:
        """JSON-ready summary (no confusion matrix)."""
        summary = {
            "num_samples": self.num_samples,
            "num_classes": len(self.class_names),
            "accuracy": self.accuracy,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
        }
        if self.rarest_accuracy is not None:
            summary["rarest_accuracy"] = {str(k): v for k, v in self.rarest_accuracy.items()}
            summary["commonest_accuracy"] = {str(k): v for k, v in self.commonest_accuracy.items()}
        summary["per_class"] = self.per_class()
        return summary


def _float_or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _as_labels(values, num_classes: int, role: str) -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim != 1:
        raise ValueError(f"{role} must be 1-D, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{role} must hold integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{role} holds class index {bad}, outside 0..{num_classes - 1}")
    return labels


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """int64 (C x C) counts, rows true, columns predicted."""
    y_true = _as_labels(y_true, num_classes, "y_true")
    y_pred = _as_labels(y_pred, num_classes, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred {len(y_pred)}; give one prediction per label")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _per_class(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """precision, recall, f1 (NaN for absent classes) and a mask of the classes that occur."""
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    occurs = (support > 0) | (predicted > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        # F1 from counts, as scikit-learn does; its denominator is > 0 for every class that occurs
        f1 = 2 * tp / (2 * tp + (predicted - tp) + (support - tp))
    for values in (precision, recall, f1):
        values[~occurs] = np.nan
    return precision, recall, f1, occurs


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    """Macro F1 alone (the early-stopping criterion), without building a Metrics."""
    _, _, f1, occurs = _per_class(confusion_matrix(y_true, y_pred, num_classes))
    return float(f1[occurs].mean()) if occurs.any() else 0.0


def tail_accuracy(confusion: np.ndarray, train_counts: np.ndarray, k: int, rarest: bool) -> float | None:
    """Pooled recall of the k rarest (or commonest) classes by training count among those with test samples."""
    support = confusion.sum(axis=1)
    candidates = np.flatnonzero(support > 0)
    if len(candidates) < k:
        return None
    # stable sort: ties in training count keep class-index order
    key = train_counts[candidates] if rarest else -train_counts[candidates]
    chosen = candidates[np.argsort(key, kind="stable")[:k]]
    return float(np.diag(confusion)[chosen].sum() / support[chosen].sum())


def metrics_from_confusion(
    confusion: np.ndarray, class_names: Sequence[str], train_counts: Sequence[int] | np.ndarray | None = None
) -> Metrics:
    confusion = np.asarray(confusion, dtype=np.int64)
    precision, recall, f1, occurs = _per_class(confusion)
    total = int(confusion.sum())
    counts = None if train_counts is None else np.asarray(train_counts, dtype=np.int64)
    if counts is not None and counts.shape != (len(class_names),):
        raise ValueError(f"{len(counts)} train counts for {len(class_names)} classes; give one count per class")
    rarest = commonest = None
    if counts is not None:
        rarest = {k: tail_accuracy(confusion, counts, k, rarest=True) for k in TAIL_SIZES}
        commonest = {k: tail_accuracy(confusion, counts, k, rarest=False) for k in TAIL_SIZES}

    def macro(values: np.ndarray) -> float:
        return float(values[occurs].mean()) if occurs.any() else 0.0

    return Metrics(
        class_names=tuple(class_names),
        confusion=confusion,
        accuracy=float(np.trace(confusion) / total) if total else 0.0,
        macro_precision=macro(precision),
        macro_recall=macro(recall),
        macro_f1=macro(f1),
        precision=precision,
        recall=recall,
        f1=f1,
        support=confusion.sum(axis=1),
        train_counts=counts,
        rarest_accuracy=rarest,
        commonest_accuracy=commonest,
    )


def compute_metrics(
    y_true, y_pred, class_names: Sequence[str], train_counts: Sequence[int] | np.ndarray | None = None
) -> Metrics:
    """Metrics for integer labels (class i is class_names[i]); train_counts enables rarest/commonest accuracy."""
    return metrics_from_confusion(confusion_matrix(y_true, y_pred, len(class_names)), class_names, train_counts)


def pool_by_group(probabilities: np.ndarray, groups: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(group ids in first-appearance order, their mean class probabilities): how a sequence's frames and crops
    become one prediction (eval --aggregate sequence and predict --aggregate sequence share this rule)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) != len(groups):
        raise ValueError(f"{len(groups)} groups for probabilities of shape {probabilities.shape}; give one per row")
    ids, position = [], {}
    codes = np.empty(len(groups), dtype=np.int64)
    for i, group in enumerate(groups):
        if group not in position:
            position[group] = len(ids)
            ids.append(group)
        codes[i] = position[group]
    sums = np.zeros((len(ids), probabilities.shape[1]))
    np.add.at(sums, codes, probabilities)
    return ids, sums / np.bincount(codes, minlength=len(ids))[:, None]


def group_labels(y_true, groups: Sequence[str], ids: Sequence[str], num_classes: int) -> np.ndarray:
    """Each group's true class: the most common true label among its members (ties: the lower class index).
    Frames of one capture share its label; a group whose frames disagree is a multi-species capture."""
    labels = _as_labels(y_true, num_classes, "y_true")
    position = {group: i for i, group in enumerate(ids)}
    votes = np.zeros((len(ids), num_classes), dtype=np.int64)
    np.add.at(votes, (np.fromiter((position[g] for g in groups), dtype=np.int64, count=len(groups)), labels), 1)
    return votes.argmax(axis=1)
