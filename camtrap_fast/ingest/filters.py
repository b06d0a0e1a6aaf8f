"""Filters between ingest and sharding. Every record either passes or becomes a `Rejection` with a reason."""

from __future__ import annotations

import difflib
import zlib
from dataclasses import dataclass, replace

import numpy as np

from camtrap_fast.errors import UserError
from camtrap_fast.ingest import records as reasons
from camtrap_fast.ingest.records import Record, Rejection


@dataclass(frozen=True)
class FilterConfig:
    drop_classes: tuple[str, ...] = ()  # compared case-insensitively
    drop_multi_species: bool = False
    keep_fraction: tuple[tuple[str, float], ...] = ()  # (class, fraction kept)
    seed: int = 0

    def __post_init__(self) -> None:
        dropped = {name.lower() for name in self.drop_classes}
        seen = set()
        for name, fraction in self.keep_fraction:
            if not 0.0 <= fraction <= 1.0:
                raise UserError(f"--keep-fraction {name}={fraction}: the fraction must be between 0 and 1")
            if name.lower() in seen:
                raise UserError(f"--keep-fraction: class '{name}' is given twice; give each class one fraction")
            if name.lower() in dropped:
                raise UserError(f"--keep-fraction {name}: the class is also in --drop-classes; choose one")
            seen.add(name.lower())


def parse_keep_fraction(text: str | None) -> tuple[tuple[str, float], ...]:
    """`empty=0.1,human=0.5` -> (("empty", 0.1), ("human", 0.5))."""
    if not text:
        return ()
    pairs = []
    for term in text.split(","):
        name, sep, value = term.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            pairs.append((name.strip(), float(value)))
        except ValueError:
            raise UserError(f"--keep-fraction: '{term}' is not CLASS=FRACTION (e.g. empty=0.1)") from None
    return tuple(pairs)


def check_class_names(records: list[Record], config: FilterConfig) -> None:
    """Every class a filter names must exist in the source (case-insensitively): a typo must not filter nothing."""
    known: dict[str, str] = {}  # lower-case -> as the source spells it
    for labels in dict.fromkeys(r.labels for r in records):  # the few distinct label sets, in first-seen order
        for label in labels:
            if label:
                known.setdefault(label.lower(), label)
    named = [("--drop-classes", name) for name in config.drop_classes]
    named += [("--keep-fraction", name) for name, _ in config.keep_fraction]
    for flag, name in named:
        if name.lower() not in known:
            close = difflib.get_close_matches(name.lower(), sorted(known), n=3, cutoff=0.5)
            hint = (f"closest: {', '.join(repr(known[c]) for c in close)}" if close
                    else f"it has {len(known)}: {', '.join(repr(known[c]) for c in sorted(known)[:5])}"
                    + (", ..." if len(known) > 5 else ""))
            raise UserError(f"{flag} '{name}': the source has no class of that name ({hint})")


def apply_filters(records: list[Record], config: FilterConfig,
                  source_records: list[Record] | None = None) -> tuple[list[Record], list[Rejection]]:
    """Filter `records`; the class names the filters give are checked against `source_records` (default: the
    records themselves), all the source lists: a class whose images were all set aside earlier (remote media,
    no detection) is still a class the user may name."""
    check_class_names(records if source_records is None else source_records, config)
    dropped = {name.lower() for name in config.drop_classes}
    kept, rejected, seen = [], [], set()
    remaining: dict[tuple[str, ...], tuple[str, ...]] = {}  # labels -> those not dropped: few distinct label sets
    for record in records:
        if record.path in seen:
            rejected.append(Rejection(record.path, reasons.DUPLICATE, "listed more than once in the source"))
            continue
        seen.add(record.path)
        if not record.label:
            rejected.append(Rejection(record.path, reasons.UNLABELLED, "no annotation or empty label"))
            continue
        # Dropping a class removes it from an image's labels; the image goes only when nothing is left.
        labels = remaining.get(record.labels)
        if labels is None:
            labels = remaining[record.labels] = tuple(label for label in record.labels if label.lower() not in dropped)
        if not labels:
            rejected.append(Rejection(record.path, reasons.DROPPED_CLASS, record.label))
            continue
        if config.drop_multi_species and len(labels) > 1:
            rejected.append(Rejection(record.path, reasons.MULTI_SPECIES, "+".join(labels)))
            continue
        if labels != record.labels:
            record = replace(record, label=labels[0], labels=labels)
        kept.append(record)
    return _keep_fractions(kept, rejected, config)


def _keep_fractions(records, rejected, config):
    fractions = {name.lower(): fraction for name, fraction in config.keep_fraction}
    if not fractions:
        return records, rejected
    drop_paths = set()
    for class_name in sorted({r.label for r in records if r.label.lower() in fractions}):
        paths = sorted(r.path for r in records if r.label == class_name)
        # Seeded by (seed, class) so the choice for one class does not change when another is added.
        rng = np.random.default_rng([config.seed, zlib.crc32(class_name.encode())])
        n_keep = round(fractions[class_name.lower()] * len(paths))
        drop_paths.update(paths[i] for i in rng.permutation(len(paths))[n_keep:])
    for record in records:
        if record.path in drop_paths:
            rejected.append(Rejection(record.path, reasons.KEPT_FRACTION, record.label))
    return [r for r in records if r.path not in drop_paths], rejected
