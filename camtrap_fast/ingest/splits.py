"""Stratified, grouped train/val/test split: per class, and frames of one capture never straddle splits."""

from __future__ import annotations

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
        if len(self.fractions) != 3 or any(f < 0 for f in self.fractions) or abs(sum(self.fractions) - 1) > 1e-6:
            raise UserError(f"--split {','.join(map(str, self.fractions))}: need three fractions train,val,test summing to 1")
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


def assign_splits(records: list[Record], config: SplitConfig) -> tuple[list[Record], dict[str, list[str]]]:
    """Give every record without a fixed split one; return them and the classes missing from a wanted split."""
    group_by = config.group_by
    if group_by == "auto":
        group_by = "sequence" if any(r.seq_id for r in records) else "none"

    def group_key(r: Record) -> str:
        value = {"sequence": r.seq_id, "location": r.location}.get(group_by)
        return f"g:{value}" if value else f"p:{r.path}"

    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if record.split is None:
            groups[group_key(record)].append(i)

    # A group is stratified under its most common class.
    by_class: dict[str, list[str]] = defaultdict(list)
    for key in sorted(groups):
        votes = Counter(records[i].label for i in groups[key])
        by_class[min(votes, key=lambda c: (-votes[c], c))].append(key)

    rng = np.random.default_rng(config.seed)
    bounds = np.cumsum(config.fractions)
    assigned = {}
    for class_name in sorted(by_class):
        keys = by_class[class_name]
        keys = [keys[i] for i in rng.permutation(len(keys))]
        sizes = np.array([len(groups[k]) for k in keys], dtype=np.float64)
        # Systematic sampling: each group sits at the midpoint of its share of the class's images, shifted by
        # one random phase per class. Every split gets its fraction in expectation, even for classes of a
        # few images, where a greedy "biggest deficit first" rule would hand everything to train.
        midpoints = (np.cumsum(sizes) - sizes / 2) / sizes.sum()
        positions = (midpoints + rng.random()) % 1.0
        splits = np.minimum(np.searchsorted(bounds, positions, side="right"), 2)
        _cover_every_split(splits, sizes, [i for i, f in enumerate(config.fractions) if f > 0])
        for key, split in zip(keys, splits):
            for i in groups[key]:
                assigned[i] = SPLITS[int(split)]

    out = [r if r.split is not None else replace(r, split=assigned[i]) for i, r in enumerate(records)]
    if any(r.split is not None for r in records):  # the source fixed the splits: those are the ones wanted
        wanted = [s for s in SPLITS if any(r.split == s for r in out)]
    else:
        wanted = [s for s, f in zip(SPLITS, config.fractions) if f > 0]
    present = defaultdict(set)
    for r in out:
        present[r.label].add(r.split)
    small = {c: [s for s in wanted if s not in present[c]] for c in sorted(present)}
    return out, {c: missing for c, missing in small.items() if missing}
