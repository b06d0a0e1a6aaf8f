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

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
    members = {}
    for split_number, split in enumerate(SPLITS):
        ordered = sorted((r for r in kept if r.split == split), key=lambda r: keys[r.path][0])
        rng = np.random.default_rng([options.seed, split_number])
        members[split] = [ordered[i] for i in rng.permutation(len(ordered))]  # mix classes within every shard
    return ShardPlan(
        fingerprint=crop_fingerprint(base, crop_digest, options.encode),
        format=format_used,
        listed=listed_count,
        classes=classes,
        members=members,
        keys=keys,
        facts=facts,
        chunks=cut_chunks(members, keys, options.shard_size),
        rejections=rejections,
        wanted=wanted_splits(kept, options.split, source_fixed),
        outside=outside,
        crops=crops_manifest(options.crops, options.encode),
        decode_checked=decode_rare is not None,
    )


def cut_chunks(members: dict[str, list[Record]], keys: dict[str, list[str]], shard_size: int) -> list[Chunk]:
    """Shard boundaries from the planned sample counts (1 a frame, 1 a box), never from decode results."""
    chunks: list[Chunk] = []
    for split in SPLITS:
        images, start, count = members[split], 0, 0
        bounds = []
        for i, record in enumerate(images):
            count += len(keys[record.path])
            if count >= shard_size:
                bounds.append((start, i + 1))
                start, count = i + 1, 0
        if start < len(images):
            bounds.append((start, len(images)))
        chunks += [Chunk(len(chunks) + n, split, f"{split}/shard-{n:06d}.tar", a, b) for n, (a, b) in enumerate(bounds)]
    return chunks


def planned_counts(plan: ShardPlan) -> dict[str, Counter]:
    """{split: Counter(class -> samples)} as planned (before any decode failure)."""
    counts = {}
    for split in SPLITS:
        counter: Counter = Counter()
        for record in plan.members[split]:
            if record.boxes:
                counter.update(box.label or record.label for box in record.boxes)
            else:
                counter[record.label] += 1
        counts[split] = counter
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
    encoder = json.JSONEncoder().encode
    for record in records:
        digest.update(encoder([record.path, record.labels, record.split, record.location, record.seq_id,
                               record.frame_num, record.datetime, identities[record.path]]).encode())
    return digest.hexdigest()[:32]
