"""Stratified, grouped train/val/test split: per class, and frames of one capture never straddle splits."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, replace

import numpy as np

from camtrap_fast.errors import UserError
from camtrap_fast.ingest.records import Record

SPLITS = ("train", "val", "test")
GROUP_BY = ("auto", "sequence", "location", "none")


@dataclass(frozen=True)
class SplitConfig:
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    group_by: str = "auto"  # auto: sequence when the source has sequence ids, else none
    seed: int = 0

    def __post_init__(self) -> None:
        if (len(self.fractions) != 3 or any(not math.isfinite(f) or f < 0 for f in self.fractions)
                or abs(sum(self.fractions) - 1) > 1e-6):
            raise UserError(f"--split {','.join(map(str, self.fractions))}: need three fractions train,val,test, "
                            "each from 0 to 1, summing to 1")
        if self.fractions[0] == 0:
            raise UserError("--split: the train fraction must be above 0")
        if self.group_by not in GROUP_BY:
            raise UserError(f"--group-by {self.group_by}: choose from {', '.join(GROUP_BY)}")


def parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--split {text}: need three numbers, e.g. 0.8,0.1,0.1") from None
    if len(values) != 3:
        raise UserError(f"--split {text}: need three numbers, e.g. 0.8,0.1,0.1")
    return values  # type: ignore[return-value]


def _cover_every_split(splits: np.ndarray, sizes: np.ndarray, wanted: list[int]) -> None:
    """Give each wanted split at least one group of a class when the class has enough groups.

    A rare species with no test image cannot be evaluated at all, which defeats the purpose of a
    rare-species tool; so a split that sampling left empty takes the smallest group of the split
    that has the most groups (as long as that split keeps one). Smallest splits are served first.
    """
    for split in sorted(wanted, key=lambda s: -s):  # test, then val, then train
        if (splits == split).any():
            continue
        groups_per_split = np.bincount(splits, minlength=3)
        donor = int(np.argmax(groups_per_split))
        if groups_per_split[donor] < 2:
            return  # fewer groups than splits: reported as too small
        candidates = np.flatnonzero(splits == donor)
        splits[candidates[np.argmin(sizes[candidates])]] = split


def _few_groups(splits: np.ndarray, sizes: np.ndarray, fractions: tuple[float, float, float]) -> None:
    """One group goes to train; of two, the larger goes to train and the other to test (val when test is 0).

    Systematic sampling would put a lone group in val or test about a fifth of the time, and then the
    class is never trained on; with two groups it could leave train empty just as well.
    """
    if len(splits) == 1:
        splits[0] = 0
    elif len(splits) == 2:
        big = int(np.argmax(sizes))  # ties: the first in this class's seeded order
        splits[big] = 0
        splits[1 - big] = 2 if fractions[2] > 0 else 1 if fractions[1] > 0 else 0


def _extend_fixed_splits(records: list[Record], group_key, group_by: str) -> list[Record]:
    """A split the source fixes for some frames of a group holds for the whole group; two different ones refuse."""
    if group_by == "none":
        return records
    fixed: dict[str, dict[str, str]] = defaultdict(dict)  # group -> {split: an example path}
    for r in records:
        if r.split is not None:
            fixed[group_key(r)].setdefault(r.split, r.relpath)
    for key, examples in sorted(fixed.items()):
        if len(examples) > 1:
            where = ", ".join(f"{path} in {split}" for split, path in sorted(examples.items()))
            raise UserError(f"{group_by} '{key[2:]}' straddles splits in the source's split column ({where}); "
                            f"give every frame of a {group_by} the same split, or pass --group-by none")
    return [replace(r, split=next(iter(fixed[group_key(r)]))) if r.split is None and group_key(r) in fixed else r
            for r in records]


def wanted_splits(assigned: list[Record], config: SplitConfig, source_fixed: bool) -> list[str]:
    """The splits every class should appear in: those in use when the source fixes splits, else those above 0."""
    if source_fixed:
        return [s for s in SPLITS if any(r.split == s for r in assigned)]
    return [s for s, f in zip(SPLITS, config.fractions) if f > 0]


def missing_splits(counts: dict[str, dict[str, int]], wanted: list[str]) -> dict[str, list[str]]:
    """{class: wanted splits it has no image in}, from per-split {class: count}, for classes short of any."""
    classes = sorted({c for per_class in counts.values() for c, n in per_class.items() if n})
    small = {c: [s for s in wanted if not counts.get(s, {}).get(c)] for c in classes}
    return {c: missing for c, missing in small.items() if missing}


def assign_splits(records: list[Record], config: SplitConfig) -> tuple[list[Record], dict[str, list[str]]]:
    """Give every record without a fixed split one; return them and the classes missing from a wanted split.

    Millions of records (a LILA dataset) pass through here, so the per-record work is one pass that numbers
    groups and classes; the vote, the per-class order and the assignment are numpy over those numbers. The
    random draws (one permutation and one phase per class, classes in name order, groups in key order) are
    the same as the per-record code this replaced, so every record gets the split it always got.
    """
    group_by = config.group_by
    if group_by == "auto":
        group_by = "sequence" if any(r.seq_id for r in records) else "none"

    def group_key(r: Record) -> str:
        value = r.seq_id if group_by == "sequence" else r.location if group_by == "location" else None
        return f"g:{value}" if value else f"p:{r.path}"

    source_fixed = any(r.split is not None for r in records)
    if source_fixed:
        records = _extend_fixed_splits(records, group_key, group_by)
    free = [i for i, r in enumerate(records) if r.split is None] if source_fixed else range(len(records))
    group_ids: dict[str, int] = {}  # group key -> its number, in order of first appearance
    class_ids: dict[str, int] = {}
    group_of = np.fromiter((group_ids.setdefault(group_key(records[i]), len(group_ids)) for i in free),
                           dtype=np.int64, count=len(free))
    class_of = np.fromiter((class_ids.setdefault(records[i].label, len(class_ids)) for i in free),
                           dtype=np.int64, count=len(free))
    group_split = _split_groups(list(group_ids), group_of, class_of, list(class_ids), config)
    names = np.array(SPLITS, dtype=object)[group_split[group_of]] if len(free) else []
    out = list(records)
    for i, split in zip(free, names):
        out[i] = records[i].with_split(split)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (split, label), n in Counter((r.split, r.label) for r in out).items():
        counts[split][label] += n
    return out, missing_splits(counts, wanted_splits(out, config, source_fixed))


def _split_groups(keys: list[str], group_of: np.ndarray, class_of: np.ndarray, class_names: list[str],
                  config: SplitConfig) -> np.ndarray:
    """The split number of every group (`keys[g]`), given each free record's group and class number."""
    sizes_all = np.bincount(group_of, minlength=len(keys))
    # A group is stratified under its most common class: nearly every group has one class, its first record's.
    first = np.unique(group_of, return_index=True)[1]  # each group's first record (a stable sort)
    group_class = class_of[first]
    mixed = np.flatnonzero(np.bincount(group_of[class_of != group_class[group_of]], minlength=len(keys)))
    if len(mixed):
        members: dict[int, list[int]] = defaultdict(list)
        for i in np.flatnonzero(np.isin(group_of, mixed)):
            members[int(group_of[i])].append(int(class_of[i]))
        for group, classes in members.items():
            votes = Counter(class_names[c] for c in classes)
            group_class[group] = class_names.index(min(votes, key=lambda c: (-votes[c], c)))

    rng = np.random.default_rng(config.seed)
    bounds = np.cumsum(config.fractions)
    key_rank = np.empty(len(keys), dtype=np.int64)
    key_rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
    class_rank = np.empty(len(class_names), dtype=np.int64)
    class_rank[sorted(range(len(class_names)), key=class_names.__getitem__)] = np.arange(len(class_names))
    by_class = np.lexsort((key_rank, class_rank[group_class]))  # groups by class name, then by key
    starts = np.flatnonzero(np.diff(class_rank[group_class[by_class]], prepend=-1))
    group_split = np.zeros(len(keys), dtype=np.int64)
    for groups in np.split(by_class, starts[1:]) if len(keys) else ():
        groups = groups[rng.permutation(len(groups))]
        sizes = sizes_all[groups].astype(np.float64)
        # Systematic sampling: each group sits at the midpoint of its share of the class's images, shifted by
        # one random phase per class. Every split gets its fraction in expectation, even for classes of a
        # few images, where a greedy "biggest deficit first" rule would hand everything to train.
        midpoints = (np.cumsum(sizes) - sizes / 2) / sizes.sum()
        positions = (midpoints + rng.random()) % 1.0
        splits = np.minimum(np.searchsorted(bounds, positions, side="right"), 2)
        _cover_every_split(splits, sizes, [i for i, f in enumerate(config.fractions) if f > 0])
        _few_groups(splits, sizes, config.fractions)
        group_split[groups] = splits
    return group_split
