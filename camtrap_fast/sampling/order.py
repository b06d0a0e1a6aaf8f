"""A plan + the split's labels -> one epoch's exact, shuffled sample order, and its part for one rank.

Every epoch each class contributes exactly its target. A class sampled t times
from n images takes every image t // n times and a fresh random subset of
t % n images once more, so oversampling never favours some images over others
by more than one copy, and undersampling (t < n) takes a subset without
replacement. The multiset is then uniformly permuted, which spreads the copies
of one image as well as any shuffle can. Everything is vectorized over
samples (loops run over classes only): 2M samples take a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from camtrap_fast.sampling.plan import SamplingPlan


def epoch_rng(seed: int, epoch: int, *stream: int) -> np.random.Generator:
    """The generator for (seed, epoch[, stream]): the same draw on every machine and worker, a new one per epoch."""
    for name, value in (("seed", seed), ("epoch", epoch), *(("stream", s) for s in stream)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return np.random.default_rng([int(seed), int(epoch), *map(int, stream)])


def epoch_multiplicity(labels: np.ndarray, plan: SamplingPlan, seed: int, epoch: int) -> np.ndarray:
    """Copies of each sample (int64, one per sample) in that epoch: exactly bincount(epoch_order(...))."""
    return _draw_multiplicity(labels, plan, epoch_rng(seed, epoch))


def epoch_order(labels: np.ndarray, plan: SamplingPlan, seed: int, epoch: int) -> np.ndarray:
    """Sample indices (int64) for one epoch: each class exactly its target, uniformly shuffled."""
    rng = epoch_rng(seed, epoch)
    multiplicity = _draw_multiplicity(labels, plan, rng)
    order = np.repeat(np.arange(len(multiplicity), dtype=np.int64), multiplicity)
    rng.shuffle(order)
    return order


def _draw_multiplicity(labels: np.ndarray, plan: SamplingPlan, rng: np.random.Generator) -> np.ndarray:
    labels = np.asarray(labels)
    num_classes = plan.num_classes
    if labels.size == 0:
        labels = labels.astype(np.int64)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels span [{labels.min()}, {labels.max()}] but the plan has {num_classes} classes")
    counts = np.bincount(labels, minlength=num_classes).astype(np.int64)
    original = np.array(plan.original, dtype=np.int64)
    if not np.array_equal(counts, original):
        wrong = int(np.flatnonzero(counts != original)[0])
        raise ValueError(
            f"the plan was made for other data: class {plan.classes[wrong]!r} has {counts[wrong]} samples here, "
            f"{original[wrong]} in the plan; build the plan from these labels' class counts"
        )
    target = np.array(plan.target, dtype=np.int64)
    whole = target // np.maximum(counts, 1)
    extra = target - whole * counts
    multiplicity = whole[labels]
    classes_with_extra = np.flatnonzero(extra)
    if classes_with_extra.size:
        # Group sample indices by class once; uint16 keys get numpy's radix sort (5x faster than int32's timsort).
        keys = labels.astype(np.uint16) if num_classes <= 1 << 16 else labels
        by_class = np.argsort(keys, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        for c in classes_with_extra.tolist():
            members = by_class[starts[c] : starts[c] + counts[c]]
            multiplicity[members[rng.choice(counts[c], size=extra[c], replace=False, shuffle=False)]] += 1
    return multiplicity


def shard_for_rank(order: np.ndarray, world_size: int, rank: int, drop_last: bool = False) -> np.ndarray:
    """Rank `rank`'s part of an epoch: every rank gets the same length, so no rank waits at a collective.

    Parts interleave (rank r takes positions r, r + world_size, ...) like torch's
    DistributedSampler. By default the order is padded by wrapping around to
    ceil(len / world_size) per rank, so up to world_size - 1 samples are seen
    twice; with drop_last it is truncated to len // world_size per rank instead.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need world_size >= 1 and 0 <= rank < world_size, got world_size={world_size} rank={rank}")
    order = np.asarray(order)
    size = len(order)
    per_rank = size // world_size if drop_last or size == 0 else -(-size // world_size)
    total = per_rank * world_size
    padded = order[:total] if total <= size else order[np.arange(total) % size]
    return padded[rank:total:world_size]
