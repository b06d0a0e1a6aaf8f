"""`camtrap-fast shard`: records -> encoded samples -> tars, indexes, manifest, rejected.csv.

A thin orchestrator over ingest, encode and the tar writer. Two invariants shape it:

* Determinism: the order of samples within a split is fixed by the seed, images are
  encoded in worker processes but consumed in order, so the tars are byte-identical
  whatever `--workers` is.
* Accounting: every listed image ends up in a shard (its whole frame or its crops, see samples.py)
  or in rejected.csv; an image is the unit of work and resumption, so its crops share a shard.
* Crash safety: a shard is written under a temporary name and renamed when complete, then
  logged in `.shard-progress.jsonl` with what it consumed. `manifest.json` is written
  last. A rerun with the same fingerprint resumes after the last logged shard; a run
  with another fingerprint never mixes into it, and only ever deletes files of ours
  (`out_dir`).

Every sample's CRC-32 goes into the index, so readers and `camtrap-fast verify` can tell
a damaged sample from a good one. Which classes get an output is `trainable`'s decision.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import time
import zlib
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from camtrap_fast.atomic import AtomicFile, open_atomic, write_text
from camtrap_fast.environment import package_versions
from camtrap_fast.errors import Fault, UserError
from camtrap_fast.ingest import load_source
from camtrap_fast.ingest.crop_plan import CropConfig, select_images
from camtrap_fast.ingest.filters import FilterConfig
from camtrap_fast.ingest.records import Record, Rejection
from camtrap_fast.ingest.splits import SPLITS, SplitConfig, assign_splits, missing_splits, wanted_splits
from camtrap_fast.processes import die_with_parent
from camtrap_fast.shards.encode import EncodeConfig, EncodeRejected
from camtrap_fast.shards.manifest import Manifest, SplitInfo, load_manifest
from camtrap_fast.shards.out_dir import PROGRESS_FILE, REJECTED_FILE, RUN_FILE, clean, prepare_out
from camtrap_fast.shards.progress import log_shard, logged_entries, read_progress
from camtrap_fast.shards.sample_index import INDEX_FILE, SampleIndex
from camtrap_fast.shards.samples import crop_fingerprint, crops_manifest, encode_sample, encode_task, plan_samples, samples
from camtrap_fast.shards.tar_writer import ShardTarWriter
from camtrap_fast.shards.trainable import (
    drop_missing, dropped_classes, file_identities, keep_trainable, rare_paths, refuse_untrained,
)

DEFAULT_SHARD_SIZE = 10_000  # ~250 MB of 256-px JPEGs at quality 90: large sequential reads, few files


@dataclass(frozen=True)
class ShardJob:
    source: Path
    out: Path
    format: str = "auto"
    image_root: Path | None = None
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    shard_size: int = DEFAULT_SHARD_SIZE
    workers: int = 1
    seed: int = 0
    overwrite: bool = False
    progress: bool = True
    command: tuple[str, ...] = ()
    crops: CropConfig = field(default_factory=CropConfig)

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise UserError(f"--shard-size {self.shard_size}: must be at least 1")
        if self.workers < 1:
            raise UserError(f"--workers {self.workers}: must be at least 1")
        if self.seed < 0:
            raise UserError(f"--seed {self.seed}: must be 0 or more")
        source, out = Path(os.path.realpath(self.source)), Path(os.path.realpath(self.out))
        if self.source.is_dir() and (out == source or source in out.parents):
            # A class-folder source would read the shards as images of a class "OUT" on the next run.
            raise UserError(f"{self.out}: is inside the source folder {self.source}; choose an output folder "
                            "outside it")


@dataclass(frozen=True)
class ShardSummary:
    manifest: Manifest
    listed: int
    rejected: dict[str, int]  # reason -> count
    seconds: float
    encoded: int  # images encoded by this run (0 when the output was already complete)
    resumed_shards: int
    up_to_date: bool = False


def build_shards(job: ShardJob) -> ShardSummary:
    started = time.perf_counter()
    format_used, records, rejections = load_source(job.source, job.format, job.image_root)
    identities = file_identities(records)
    # The crop join (detections, annotation boxes) and the filters; `listed`: what passed them.
    listed, selected_out, crop_digest = select_images(records, job.crops, job.filters, format_used, job.source,
                                                      job.image_root)
    kept, missing = drop_missing(listed, identities)
    kept, unusable = _reject_unusable_rare(kept, job)
    rejections += selected_out + missing + unusable
    source_fixed = any(r.split is not None for r in kept)
    kept, _ = assign_splits(kept, job.split)  # "too small" is decided from what reached the shards, below
    kept, untrained = keep_trainable(kept)
    rejections += untrained
    if not kept:
        raise UserError(f"{job.source}: no usable images ({_describe(len(records), rejections)})")
    classes, keys, facts = plan_samples(kept)
    fingerprint = crop_fingerprint(_fingerprint(job, format_used, records, identities), crop_digest, job.encode)

    state = prepare_out(job.out, fingerprint, job.overwrite)
    if state == "complete":
        try:  # complete means intact too: an edited manifest or a stale index is never "already complete"
            manifest = load_manifest(job.out)
            for split, info in manifest.splits.items():
                if info.samples:
                    manifest.load_index(split)
            return ShardSummary(manifest, len(records), _count_reasons(job.out), time.perf_counter() - started,
                                0, 0, True)
        except Fault:
            if not job.overwrite:
                raise
            clean(job.out, remove_dir=False)  # --overwrite replaces the damaged output
            state = prepare_out(job.out, fingerprint, job.overwrite)
    created_out = state == "new"

    progress = read_progress(job.out)
    class_index = {name: i for i, name in enumerate(classes)}
    bar = tqdm(total=len(kept), unit="img", desc="shard", disable=None if job.progress else True, smoothing=0.1)
    encoded = 0
    splits: dict[str, SplitInfo] = {}
    # on_error: whatever goes wrong (a full disk, Ctrl-C), the shard being written leaves no temporary behind
    with _EncoderPool(job.encode, job.workers) as pool, ExitStack() as on_error:
        for split_number, split in enumerate(SPLITS):
            members = sorted((r for r in kept if r.split == split), key=lambda r: keys[r.path][0])
            rng = np.random.default_rng([job.seed, split_number])
            members = [members[i] for i in rng.permutation(len(members))]  # mix classes within every shard
            done = [p for p in progress if p["split"] == split]
            rejections += [Rejection(*r) for p in done for r in p["rejections"]]
            consumed = done[-1]["consumed"] if done else 0
            bar.update(consumed)
            entries = logged_entries(job.out, done)
            shards = [p["shard"] for p in done]
            writer = _SplitWriter(job, split, len(shards))
            on_error.callback(writer.discard)
            for record, result in zip(members[consumed:], pool.encode(encode_task(r) for r in members[consumed:])):
                consumed += 1
                bar.update(1)
                if isinstance(result, Rejection):
                    writer.rejections.append(result)
                    continue
                encoded += 1
                for key, label, jpeg, extra in samples(record, keys[record.path], result):
                    writer.add(key, class_index[label], record, jpeg, extra)
                if writer.count >= job.shard_size:  # an image's crops stay together: a shard may run over
                    shards.append(writer.finish(consumed, entries))
                    rejections += writer.rejections
                    writer = _SplitWriter(job, split, len(shards))
                    on_error.callback(writer.discard)
            if writer.count:
                shards.append(writer.finish(consumed, entries))
            rejections += writer.rejections
            writer.discard()
            _write_index(job.out, split, shards, entries, facts)
            counts = Counter(classes[e[1]] for e in entries)
            splits[split] = SplitInfo(len(entries), {c: counts.get(c, 0) for c in classes}, tuple(shards))
            if split == "train":
                refuse_untrained(classes, splits[split].class_counts, kept, rejections, job.out)
    bar.close()

    if not any(info.samples for info in splits.values()):
        clean(job.out, remove_dir=created_out)
        raise UserError(f"{job.source}: no usable images ({_describe(len(records), rejections)})")
    _write_rejected(job.out, rejections)
    manifest = Manifest(
        classes=classes,
        splits=splits,
        image_size=job.encode.size,
        quality=job.encode.quality,
        fingerprint=fingerprint,
        rejected=len(rejections),
        small_classes=missing_splits({s: info.class_counts for s, info in splits.items()},
                                     wanted_splits(kept, job.split, source_fixed)),
        dropped_classes=dropped_classes(listed, classes, rejections),
        crops=crops_manifest(job.crops, job.encode),
        command=job.command,
        versions=package_versions(),
        root=job.out,
    )
    manifest.save()  # from here on the directory is complete
    for name in (PROGRESS_FILE, RUN_FILE):
        (job.out / name).unlink(missing_ok=True)
    reasons = Counter(r.reason for r in rejections)
    return ShardSummary(manifest, len(records), dict(reasons), time.perf_counter() - started, encoded, len(progress))


def _reject_unusable_rare(records: list[Record], job: ShardJob) -> tuple[list[Record], list[Rejection]]:
    """Decode the few images of rare classes before the class list is fixed (trainable.py says why)."""
    rare = rare_paths(records)
    if not rare:
        return records, []
    with _EncoderPool(job.encode, min(job.workers, len(rare))) as pool:
        unusable = [result for result in pool.encode((path, ()) for path in rare) if isinstance(result, Rejection)]
    paths = {r.path for r in unusable}
    return [r for r in records if r.path not in paths], unusable


class _SplitWriter:
    """Accumulates one shard in a temporary file; `finish` renames it into place and logs it."""

    def __init__(self, job: ShardJob, split: str, number: int):
        self.job = job
        self.split = split
        self.name = f"{split}/shard-{number:06d}"
        self.file: AtomicFile | None = None  # opened by the first sample, so an empty split leaves no files
        self.tar = None
        self.samples: list[tuple[str, int, int, int]] = []
        self.rejections: list[Rejection] = []

    @property
    def count(self) -> int:
        return len(self.samples)

    def add(self, key: str, label: int, record: Record, jpeg: bytes, extra: dict | None = None) -> None:
        if self.file is None:
            self.file = AtomicFile(self.job.out / f"{self.name}.tar", "wb")
            self.tar = ShardTarWriter(self.file)
        meta = {"key": key, "label": record.label, **record.metadata(), **(extra or {})}
        members = self.tar.write_sample(
            key, {"cls": str(label).encode(), "jpg": jpeg, "json": json.dumps(meta, sort_keys=True).encode()}
        )
        jpg = next(m for m in members if m.extension == "jpg")
        self.samples.append((key, label, jpg.offset, jpg.size, zlib.crc32(jpeg)))

    def finish(self, consumed: int, entries: list) -> str:
        self.tar.close()
        out = self.job.out
        write_text(out / f"{self.name}.idx", self.tar.dali_index())
        self.file.commit()
        shard = f"{self.name}.tar"
        log = {
            "split": self.split,
            "shard": shard,
            "consumed": consumed,
            "rejections": [[r.path, r.reason, r.detail] for r in self.rejections],
            "samples": [list(s) for s in self.samples],
        }
        log_shard(out, log)
        entries.extend([(shard, label, offset, size, key, crc) for key, label, offset, size, crc in self.samples])
        self.file = None  # committed: nothing left to discard
        return shard

    def discard(self) -> None:
        if self.file is not None:
            self.file.discard()
            self.file = None


class _EncoderPool:
    """Encodes in worker processes but yields results in input order (that order is what makes shards deterministic)."""

    def __init__(self, config: EncodeConfig, workers: int):
        self.config = config
        self.workers = workers
        self.pool = None

    def __enter__(self) -> "_EncoderPool":
        if self.workers > 1:
            self.pool = multiprocessing.get_context("fork").Pool(self.workers, _init_worker, (self.config,))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def encode(self, paths):
        if self.pool is None:
            _init_worker(self.config)
            return map(_encode_one, paths)
        return self.pool.imap(_encode_one, paths, chunksize=4)


_worker_config: EncodeConfig | None = None


def _init_worker(config: EncodeConfig) -> None:
    global _worker_config
    _worker_config = config
    if multiprocessing.parent_process() is not None:  # a pool worker: end with a killed `shard`
        die_with_parent()


def _encode_one(task: tuple[str, tuple]):
    try:
        return encode_sample(task, _worker_config)
    except EncodeRejected as rejected:
        return Rejection(task[0], rejected.reason, rejected.detail)


def _fingerprint(job: ShardJob, format_used: str, records: list[Record], identities: dict[str, str]) -> str:
    """Everything that changes the bytes written: options, and every input's identity, size and mtime."""
    digest = hashlib.sha256()
    options = {
        "format": format_used,
        "encode": [job.encode.size, job.encode.quality],
        "filters": [sorted(c.lower() for c in job.filters.drop_classes), job.filters.drop_multi_species,
                    sorted(job.filters.keep_fraction), job.filters.seed],
        "split": [list(job.split.fractions), job.split.group_by, job.split.seed],
        "shard_size": job.shard_size,
        "seed": job.seed,
    }
    digest.update(json.dumps(options, sort_keys=True).encode())
    for record in records:
        digest.update(json.dumps([record.path, record.labels, record.split, record.location, record.seq_id,
                                  record.frame_num, record.datetime, identities[record.path]]).encode())
    return digest.hexdigest()[:32]


def _write_index(out: Path, split: str, shards: list[str], entries: list, facts: dict[str, tuple[str, str]]) -> None:
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
        sequences=[facts[e[4]][0] for e in entries], sources=[facts[e[4]][1] for e in entries],  # key -> (seq, src)
        crc32=[e[5] for e in entries],
    )
    index.save(out / split / INDEX_FILE)


def _write_rejected(out: Path, rejections: list[Rejection]) -> None:
    with open_atomic(out / REJECTED_FILE, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "reason", "detail"])
        writer.writerows([r.path, r.reason, r.detail] for r in sorted(rejections, key=lambda r: r.path))


def _count_reasons(out: Path) -> dict[str, int]:
    try:
        with open(out / REJECTED_FILE, newline="", encoding="utf-8") as f:
            return dict(Counter(row["reason"] for row in csv.DictReader(f)))
    except (OSError, UnicodeDecodeError, csv.Error, KeyError) as error:
        raise Fault(f"{out / REJECTED_FILE}: cannot read ({getattr(error, 'strerror', None) or error}); "
                    "shard again with --overwrite") from None


def _describe(listed: int, rejections: list[Rejection]) -> str:
    reasons = Counter(r.reason for r in rejections)
    detail = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
    return f"{listed} listed, all rejected: {detail}" if detail else f"{listed} listed"
