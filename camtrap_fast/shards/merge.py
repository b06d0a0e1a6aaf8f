"""`shard OUT --merge` (and the end of every one-machine run): the parts' logs -> indexes, rejected.csv, manifest.

Everything here is read from OUT (the plan and each part's progress log), never from the source, so the merge
runs anywhere OUT is visible. The manifest is written last: from then on the folder is complete, and the
parts' bookkeeping is removed.
"""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from camtrap_fast.atomic import open_atomic
from camtrap_fast.environment import package_versions
from camtrap_fast.errors import Fault, UserError
from camtrap_fast.ingest.records import Record, Rejection
from camtrap_fast.ingest.splits import SPLITS, missing_splits
from camtrap_fast.shards.manifest import Manifest, SplitInfo
from camtrap_fast.shards.out_dir import REJECTED_FILE, clean, remove_run_files
from camtrap_fast.shards.parts import FinishedParts, check_parts
from camtrap_fast.shards.plan import describe
from camtrap_fast.shards.progress import logged_entries, parse_progress
from camtrap_fast.shards.sample_index import INDEX_FILE, SampleIndex
from camtrap_fast.shards.trainable import dropped_classes, refuse_untrained


@dataclass(frozen=True)
class Merged:
    manifest: Manifest
    listed: int
    rejected: dict[str, int]  # reason -> count


def merge_parts(out: Path, command: tuple[str, ...] | None = None, created_out: bool = False) -> Merged:
    """Check that all parts finished from one plan and write the indexes, rejected.csv and the manifest."""
    finished = check_parts(out)
    plan = finished.plan
    logs = _logs(out, finished)
    classes = tuple(plan["classes"])
    rejections = [Rejection(*r) for r in plan["rejections"]]
    train_rejected: dict[str, list[Rejection]] = defaultdict(list)
    splits: dict[str, SplitInfo] = {}
    for split in SPLITS:
        shards, entries = [], []
        for entry in (e for e in logs if e["split"] == split):
            for path, reason, detail, label in entry["rejections"]:
                rejections.append(Rejection(path, reason, detail))
                if split == "train":
                    train_rejected[label].append(rejections[-1])
            if entry["shard"] is not None:
                shards.append(entry["shard"])
                entries += logged_entries(out, [entry])
        _write_index(out, split, shards, entries)
        counts = Counter(classes[e[1]] for e in entries)
        splits[split] = SplitInfo(len(entries), {c: counts.get(c, 0) for c in classes}, tuple(shards))
    refuse_untrained(classes, splits["train"].class_counts, plan["train_images"], train_rejected, out)
    if not any(info.samples for info in splits.values()):
        if created_out:
            clean(out, remove_dir=True)
        raise UserError(f"{out}: no usable images ({describe(plan['listed'], rejections)})")
    _write_rejected(out, rejections)
    outside = [Record(path, path, label) for path, label in plan["outside"]]
    manifest = Manifest(
        classes=classes,
        splits=splits,
        image_size=plan["image_size"],
        quality=plan["quality"],
        fingerprint=plan["fingerprint"],
        rejected=len(rejections),
        small_classes=missing_splits({s: info.class_counts for s, info in splits.items()}, plan["wanted"]),
        dropped_classes=dropped_classes(outside, classes, rejections),
        crops=plan["crops"],
        command=tuple(command if command is not None else finished.commands[0]),
        versions=package_versions(),
        root=out,
    )
    manifest.save()  # from here on the directory is complete
    remove_run_files(out)
    return Merged(manifest, plan["listed"], dict(Counter(r.reason for r in rejections)))


def _logs(out: Path, finished: FinishedParts) -> list[dict]:
    """Every part's log lines, in planned-shard order, each shard checked to be in place at its logged size."""
    logs = []
    for part in finished.parts:
        expected = [c[0] for c in part.chunks(finished.plan["chunks"])]
        lines = parse_progress(part.progress_path(out))
        if [e["chunk"] for e in lines[:len(expected)]] != expected:
            raise UserError(f"{part.progress_path(out)}: does not log every shard of part {part.label}; rerun "
                            f"`camtrap-fast shard SOURCE {out} --part {part.label}`, then merge")
        for entry in lines[:len(expected)]:
            shard = entry["shard"]
            if shard is None:
                continue
            try:
                size = os.path.getsize(out / shard)
                os.stat((out / shard).with_suffix(".idx"))
            except OSError:
                size = None
            if size != entry["bytes"]:
                raise Fault(f"{out / shard}: missing or not the {entry['bytes']} bytes part {part.label} wrote "
                            f"(or its .idx is missing); rerun `camtrap-fast shard SOURCE {out} --part {part.label}` "
                            "after deleting its .shard-part file, then merge")
        logs += lines[:len(expected)]
    return logs


def _write_index(out: Path, split: str, shards: list[str], entries: list) -> None:
    if not entries:
        return
    shard_number = {name: i for i, name in enumerate(shards)}
    index = SampleIndex.build(
        keys=[e[4] for e in entries],
        labels=[e[1] for e in entries],
        shard_ids=[shard_number[e[0]] for e in entries],
        offsets=[e[2] for e in entries],
        sizes=[e[3] for e in entries],
        shards=shards,
        sequences=[e[6] for e in entries], sources=[e[7] for e in entries],
        crc32=[e[5] for e in entries],
    )
    index.save(out / split / INDEX_FILE)


def _write_rejected(out: Path, rejections: list[Rejection]) -> None:
    with open_atomic(out / REJECTED_FILE, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason", "detail"])
        writer.writerows([r.path, r.reason, r.detail] for r in sorted(rejections, key=lambda r: r.path))


def count_reasons(out: Path) -> dict[str, int]:
    try:
        with open(out / REJECTED_FILE, newline="", encoding="utf-8") as f:
            return dict(Counter(row["reason"] for row in csv.DictReader(f)))
    except (OSError, UnicodeDecodeError, csv.Error, KeyError) as error:
        raise Fault(f"{out / REJECTED_FILE}: cannot read ({getattr(error, 'strerror', None) or error}); "
                    "shard again with --overwrite") from None
