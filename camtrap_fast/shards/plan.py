"""Ingest, filters and split -> the `ShardPlan`: every sample's place, fixed before a single image is encoded.

The plan is what makes `--part K/N` and `--dry-run` possible. It says, for each split, which images go
in which order (a seeded permutation that mixes classes), and where each shard starts and ends. A shard
ends after the image whose samples bring its planned count to `shard_size` (an image's crops stay
together, so a shard may run over); an image rejected at decode time leaves a hole in its shard rather
than moving the boundary, so the shard list, the shard numbering and each shard's members are the same
whether one machine writes them all or N machines each write a slice. A shard whose every image is
rejected is not written (its number is skipped).

Every part computes the same plan from the same input and options; its digest (`digest()`) is what the
merge compares. Only the few images of rare classes are decoded here (trainable.py says why), and not
even those in a dry run.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camtrap_fast.cycle_collector import cycle_collector
from camtrap_fast.errors import UserError
from camtrap_fast.ingest import load_source
from camtrap_fast.ingest.crop_plan import CropConfig, select_images
from camtrap_fast.ingest.filters import FilterConfig
from camtrap_fast.ingest.records import Record, Rejection
from camtrap_fast.ingest.splits import SPLITS, SplitConfig, assign_splits, wanted_splits
from camtrap_fast.shards.encode import EncodeConfig
from camtrap_fast.shards.samples import crop_fingerprint, crops_manifest, plan_samples
from camtrap_fast.shards.trainable import drop_missing, file_identities, keep_trainable, rare_paths

DEFAULT_SHARD_SIZE = 10_000  # ~250 MB of 256-px JPEGs at quality 90: large sequential reads, few files


@dataclass(frozen=True)
class PlanOptions:
    """What decides the plan (and the bytes written): everything of a shard job but where and how fast."""

    source: Path
    format: str = "auto"
    image_root: Path | str | None = None  # a folder, or an http(s):// URL prefix
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    shard_size: int = DEFAULT_SHARD_SIZE
    seed: int = 0
    crops: CropConfig = field(default_factory=CropConfig)
    remote_media: str = "fetch"  # fetch: http(s) URLs are read at shard time; skip: rejected, as before they were

    def __post_init__(self) -> None:
        if self.remote_media not in ("fetch", "skip"):
            raise UserError(f"--remote-media {self.remote_media}: choose fetch or skip")


@dataclass(frozen=True)
class Chunk:
    """One planned shard: images `start:end` of its split's ordered members."""

    number: int  # position among all chunks of the plan (train first, then val, test): what parts divide
    split: str
    shard: str  # "train/shard-000003.tar"
    start: int
    end: int


@dataclass
class ShardPlan:
    fingerprint: str
    format: str
    listed: int  # images the source lists
    classes: tuple[str, ...]
    members: dict[str, list[Record]]  # split -> its images in shard order
    kept: list[Record]  # the same images in source order, to count over: they lie in memory in that order
    keys: dict[str, list[str]]  # image path -> its sample keys
    facts: dict[str, tuple[str, str]]  # sample key -> (sequence id, source relpath)
    chunks: list[Chunk]
    rejections: list[Rejection]  # everything rejected before encoding, in a fixed order
    wanted: list[str]  # splits every class should appear in
    outside: list[tuple[str, str]]  # (path, label) of listed images whose class has no output
    crops: dict  # the manifest's `crops` field
    decode_checked: bool  # whether rare classes' images were decode-checked (never in a dry run)

    def digest(self) -> str:
        """What two parts must agree on to be merged: the plan's every decision, in a few bytes."""
        digest = hashlib.sha256(json.dumps([self.fingerprint, self.classes, self.wanted, self.crops]).encode())
        for chunk in self.chunks:
            digest.update(f"{chunk.shard}:{chunk.start}:{chunk.end};".encode())
        for split in SPLITS:
            for record in self.members[split]:
                digest.update(record.path.encode() + b"\0")
        return digest.hexdigest()[:32]


def make_plan(options: PlanOptions, decode_rare=None) -> ShardPlan:
    """Ingest, filter, split and cut into shards. `decode_rare(paths) -> [Rejection]` decodes the images of rare
    classes (None in a dry run: nothing is opened)."""
    # Planning makes millions of records, keys and dicts, none of them in a reference cycle; the cyclic collector
    # would walk them all again and again as they pile up (a tenth of a 2,000,000-image dry run) to free nothing.
    # So it is off meanwhile, and what survives is frozen (gc.freeze) before it is back on: the first collection
    # would otherwise walk all of them once more. Frozen objects are still freed by reference counting.
    with cycle_collector(False, freeze=True):
        return _make_plan(options, decode_rare)


def _make_plan(options: PlanOptions, decode_rare) -> ShardPlan:
    format_used, records, rejections = load_source(options.source, options.format, options.image_root)
    listed_count = len(records)
    identities = file_identities(records)
    base = _fingerprint(options, format_used, records, identities)
    # The crop join (detections, annotation boxes) and the filters; `listed`: what passed them.
    listed, selected_out, crop_digest = select_images(records, options.crops, options.filters, format_used,
                                                      options.source, options.image_root,
                                                      fetch_remote=options.remote_media == "fetch")
    del records  # from here on only what passed the filters is held
    kept, missing = drop_missing(listed, identities)
    del identities
    unusable = []
    if decode_rare is not None and rare_paths(kept):
        with cycle_collector(True):  # its forked encoder workers inherit the collector's state
            unusable = decode_rare(rare_paths(kept))
        bad = {r.path for r in unusable}
        kept = [r for r in kept if r.path not in bad]
    rejections += selected_out + missing + unusable
    source_fixed = any(r.split is not None for r in kept)
    kept, _ = assign_splits(kept, options.split)  # "too small" is decided from what reached the shards
    kept, untrained = keep_trainable(kept)
    rejections += untrained
    if not kept:
        raise UserError(f"{options.source}: no usable images ({describe(listed_count, rejections)})")
    classes, keys, facts = plan_samples(kept)
    in_classes = set(classes)
    outside = [(r.path, r.label) for r in listed if r.label not in in_classes]
    del listed
    members, sample_counts = _order_members(kept, keys, options.seed)
    return ShardPlan(
        fingerprint=crop_fingerprint(base, crop_digest, options.encode),
        format=format_used,
        listed=listed_count,
        classes=classes,
        members=members,
        kept=kept,
        keys=keys,
        facts=facts,
        chunks=cut_chunks(sample_counts, options.shard_size),
        rejections=rejections,
        wanted=wanted_splits(kept, options.split, source_fixed),
        outside=outside,
        crops=crops_manifest(options.crops, options.encode),
        decode_checked=decode_rare is not None,
    )


def _order_members(kept: list[Record], keys: dict[str, list[str]], seed: int) -> tuple[dict, dict]:
    """{split: its images in shard order}: by sample key, then a seeded permutation that mixes classes within every
    shard; and {split: each of them's sample count}, in the same order. Worked out on numbers in `kept`'s order
    (`keys` is in that order too): a walk over millions of records in shuffled order is a cache miss a record."""
    own_keys = list(keys.values())
    assert len(own_keys) == len(kept), "keys must hold one entry per kept image, in the same order"
    sizes = np.fromiter(map(len, own_keys), dtype=np.int64, count=len(own_keys))
    split_of = np.fromiter(map(SPLITS.index, (r.split for r in kept)), dtype=np.int64, count=len(kept))
    members, sample_counts = {}, {}
    for split_number, split in enumerate(SPLITS):
        ordered = sorted(np.flatnonzero(split_of == split_number).tolist(), key=lambda i: own_keys[i][0])
        rng = np.random.default_rng([seed, split_number])
        order = np.array(ordered, dtype=np.int64)[rng.permutation(len(ordered))]
        members[split] = [kept[i] for i in order.tolist()]
        sample_counts[split] = sizes[order]
    return members, sample_counts


def cut_chunks(sample_counts: dict[str, np.ndarray], shard_size: int) -> list[Chunk]:
    """Shard boundaries from the planned sample counts (1 a frame, 1 a box) of each split's images in shard order,
    never from decode results."""
    chunks: list[Chunk] = []
    for split in SPLITS:
        # The running sample count, and each shard's end found by bisection: one step per shard, not per image.
        counts = np.cumsum(sample_counts[split])
        bounds, start, before = [], 0, 0
        while start < len(counts):
            end = int(np.searchsorted(counts, before + max(shard_size, 1), side="left")) + 1  # first to reach it
            end = min(end, len(counts))
            bounds.append((start, end))
            start, before = end, int(counts[end - 1])
        chunks += [Chunk(len(chunks) + n, split, f"{split}/shard-{n:06d}.tar", a, b) for n, (a, b) in enumerate(bounds)]
    return chunks


def planned_counts(plan: ShardPlan) -> dict[str, Counter]:
    """{split: Counter(class -> samples)} as planned (before any decode failure)."""
    counts: dict[str, Counter] = {split: Counter() for split in SPLITS}
    for (split, label), n in Counter((r.split, r.label) for r in plan.kept if not r.boxes).items():
        counts[split][label] += n
    for r in plan.kept:
        if r.boxes:
            counts[r.split].update(box.label or r.label for box in r.boxes)
    return counts


def describe(listed: int, rejections: list[Rejection]) -> str:
    reasons = Counter(r.reason for r in rejections)
    detail = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
    return f"{listed} listed, all rejected: {detail}" if detail else f"{listed} listed"


def _fingerprint(options: PlanOptions, format_used: str, records: list[Record], identities: dict[str, str]) -> str:
    """Everything that changes the bytes written: options, and every input's identity, size and mtime."""
    digest = hashlib.sha256()
    settings = {
        "format": format_used,
        "encode": [options.encode.size, options.encode.quality],
        "filters": [sorted(c.lower() for c in options.filters.drop_classes), options.filters.drop_multi_species,
                    sorted(options.filters.keep_fraction), options.filters.seed],
        "split": [list(options.split.fractions), options.split.group_by, options.split.seed],
        "shard_size": options.shard_size,
        "seed": options.seed,
        **({"remote_media": "skip"} if options.remote_media == "skip" else {}),  # absent: fingerprints made before it
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    encode = record_encoder()
    for start in range(0, len(records), _FINGERPRINT_BATCH):  # one update per batch: the same bytes, fewer calls
        digest.update("".join([encode([r.path, r.labels, r.split, r.location, r.seq_id, r.frame_num, r.datetime,
                                       identities[r.path]]) for r in records[start:start + _FINGERPRINT_BATCH]]).encode())
    return digest.hexdigest()[:32]


_FINGERPRINT_BATCH = 10_000


def record_encoder():
    """`json.JSONEncoder().encode` for a record's list of strings, numbers and None, without its per-call set-up
    (an encoder made per call): the C encoder made once, called directly. Same text (ensure_ascii, ", " between
    items); where the C encoder is missing, the plain one."""
    from json import encoder as json_encoder

    if json_encoder.c_make_encoder is None:
        return json.JSONEncoder().encode

    def unknown(value):
        raise TypeError(f"{value!r} is not JSON serializable")

    chunks = json_encoder.c_make_encoder(None, unknown, json_encoder.encode_basestring_ascii, None, ": ", ", ",
                                         False, False, True)
    return lambda value: "".join(chunks(value, 0))
