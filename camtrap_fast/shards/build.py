"""`camtrap-fast shard`: the plan -> encoded samples -> tars; then the merge writes indexes, manifest, rejected.csv.

A thin orchestrator over plan, encode, the tar writer and the merge. The invariants that shape it:

* Determinism: the plan (plan.py) fixes every image's shard and place before anything is encoded; images
  are encoded in worker processes but consumed in order, so the tars are byte-identical whatever
  `--workers` is, and whatever `--part K/N` split the work (a one-machine run is part 0/1 + the merge).
* Accounting: every listed image ends up in a shard (its whole frame or its crops, see samples.py)
  or in rejected.csv; an image is the unit of work, so its crops share a shard.
* Crash safety: a shard is written under a temporary name and renamed when complete, then logged in
  the part's progress log with what it holds. `manifest.json` is written last. A rerun with the same
  fingerprint resumes after the last logged shard; a run with another fingerprint never mixes into it,
  and only ever deletes files of ours (`out_dir`); a part deletes only its own shards' files.

Every sample's CRC-32 goes into the index, so readers and `camtrap-fast verify` can tell a damaged sample
from a good one. Which classes get an output is `trainable`'s decision.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from camtrap_fast.atomic import AtomicFile, write_text
from camtrap_fast.errors import Fault, UserError
from camtrap_fast.ingest.crop_plan import CropConfig
from camtrap_fast.ingest.filters import FilterConfig
from camtrap_fast.ingest.records import Record, Rejection
from camtrap_fast.ingest.splits import SplitConfig
from camtrap_fast.shards.encode import EncodeConfig
from camtrap_fast.shards.fetch import FetchConfig, with_data
from camtrap_fast.shards.manifest import Manifest, load_manifest
from camtrap_fast.shards.merge import count_reasons, merge_parts
from camtrap_fast.shards.out_dir import clean, clean_temporaries, prepare_out
from camtrap_fast.shards.parts import Part, part_done, plan_record, strip_part, write_part_record, write_plan
from camtrap_fast.shards.plan import DEFAULT_SHARD_SIZE, Chunk, PlanOptions, ShardPlan, make_plan
from camtrap_fast.shards.pool import EncoderPool
from camtrap_fast.shards.progress import log_shard, read_progress
from camtrap_fast.shards.samples import encode_task, samples
from camtrap_fast.shards.tar_writer import ShardTarWriter

__all__ = ["DEFAULT_SHARD_SIZE", "ShardJob", "ShardSummary", "build_shards", "plan_job"]


@dataclass(frozen=True)
class ShardJob:
    source: Path
    out: Path
    format: str = "auto"
    image_root: Path | str | None = None  # a folder, or an http(s):// URL prefix
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
    part: Part | None = None  # None: the whole job on this machine, merge included
    fetch: FetchConfig = field(default_factory=FetchConfig)
    remote_media: str = "fetch"  # fetch | skip (http(s) URLs rejected as not downloaded)

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise UserError(f"--shard-size {self.shard_size}: must be at least 1")
        if self.workers < 1:
            raise UserError(f"--workers {self.workers}: must be at least 1")
        if self.seed < 0:
            raise UserError(f"--seed {self.seed}: must be 0 or more")
        if self.part is not None and self.overwrite:
            raise UserError("--overwrite with --part: parts run side by side and would delete each other's work; "
                            "empty OUT (or choose a new one) before starting the parts")
        source, out = Path(os.path.realpath(self.source)), Path(os.path.realpath(self.out))
        if self.source.is_dir() and (out == source or source in out.parents):
            # A class-folder source would read the shards as images of a class "OUT" on the next run.
            raise UserError(f"{self.out}: is inside the source folder {self.source}; choose an output folder "
                            "outside it")

    def plan_options(self) -> PlanOptions:
        return PlanOptions(source=self.source, format=self.format, image_root=self.image_root, encode=self.encode,
                           filters=self.filters, split=self.split, shard_size=self.shard_size, seed=self.seed,
                           crops=self.crops, remote_media=self.remote_media)


@dataclass(frozen=True)
class ShardSummary:
    manifest: Manifest | None  # None for a part (the merge writes the manifest)
    listed: int
    rejected: dict[str, int]  # reason -> count (for a part: what it found; the merge adds the plan's)
    seconds: float
    encoded: int  # images encoded by this run (0 when the output was already complete)
    resumed_shards: int
    up_to_date: bool = False
    part: Part | None = None
    shards_written: int = 0


def plan_job(job: ShardJob, decode: bool = True) -> ShardPlan:
    """The job's plan; `decode`: decode-check the images of rare classes (off in a dry run: nothing is opened)."""
    def decode_rare(paths: list[str]) -> list[Rejection]:
        tasks = with_data(((path, ()) for path in paths), job.fetch)
        with EncoderPool(job.encode, min(job.workers, len(paths))) as pool:
            return [result for result in pool.encode(tasks) if isinstance(result, Rejection)]

    return make_plan(job.plan_options(), decode_rare if decode else None)


def build_shards(job: ShardJob) -> ShardSummary:
    started = time.perf_counter()
    plan = plan_job(job)
    part = job.part or Part(0, 1)
    shared = job.part is not None
    state = prepare_out(job.out, plan.fingerprint, job.overwrite, shared=shared)
    if state == "complete":
        return _already_complete(job, plan, started)
    record = plan_record(plan, job.encode.size, job.encode.quality)
    write_plan(job.out, record)
    chunks = part.chunks(plan.chunks)
    if shared:
        clean_temporaries(job.out, {c.shard for c in chunks})
    resumed, encoded, rejected, written = 0, 0, {}, 0
    if not (shared and part_done(job.out, part, record["digest"])):
        resumed, encoded, rejected, written = _write_chunks(job, plan, part, chunks)
        write_part_record(job.out, part, record, chunks, strip_part(job.command))
    seconds = time.perf_counter() - started
    if shared:
        return ShardSummary(None, plan.listed, rejected, seconds, encoded, resumed, part=part, shards_written=written)
    merged = merge_parts(job.out, strip_part(job.command), created_out=state == "new")
    return ShardSummary(merged.manifest, merged.listed, merged.rejected, time.perf_counter() - started, encoded,
                        resumed, shards_written=written)


def _already_complete(job: ShardJob, plan: ShardPlan, started: float) -> ShardSummary:
    try:  # complete means intact too: an edited manifest or a stale index is never "already complete"
        manifest = load_manifest(job.out)
        for split, info in manifest.splits.items():
            if info.samples:
                manifest.load_index(split)
        return ShardSummary(manifest, plan.listed, count_reasons(job.out), time.perf_counter() - started, 0, 0,
                            True, part=job.part)
    except Fault:
        if not job.overwrite:
            raise
        clean(job.out, remove_dir=False)  # --overwrite replaces the damaged output
        return build_shards(job)


def _write_chunks(job: ShardJob, plan: ShardPlan, part: Part, chunks: list[Chunk]) -> tuple[int, int, dict, int]:
    """Encode and write this part's planned shards, resuming after the last logged one."""
    log_path = part.progress_path(job.out)
    done = read_progress(job.out, log_path, [c.number for c in chunks], {c.shard for c in chunks})
    todo = chunks[len(done):]
    images = [r for c in todo for r in plan.members[c.split][c.start:c.end]]
    total = sum(c.end - c.start for c in chunks)
    class_index = {name: i for i, name in enumerate(plan.classes)}
    bar = tqdm(total=total, initial=total - len(images), unit="img", desc="shard" if job.part is None else
               f"part {part.label}", disable=None if job.progress else True, smoothing=0.1)
    encoded, written, rejected = 0, 0, {}
    # on_error: whatever goes wrong (a full disk, Ctrl-C), the shard being written leaves no temporary behind
    with EncoderPool(job.encode, job.workers) as pool, ExitStack() as on_error:
        results = pool.encode(with_data((encode_task(r) for r in images), job.fetch))
        for chunk in todo:
            writer = _ShardWriter(job.out, chunk, log_path)
            on_error.callback(writer.discard)
            for record in plan.members[chunk.split][chunk.start:chunk.end]:
                result = next(results)
                bar.update(1)
                if isinstance(result, Rejection):
                    writer.rejections.append((result, record.label))
                    rejected[result.reason] = rejected.get(result.reason, 0) + 1
                    continue
                encoded += 1
                for key, label, jpeg, extra in samples(record, plan.keys[record.path], result):
                    writer.add(key, class_index[label], record, jpeg, plan.facts[key], extra)
            written += writer.finish()
    bar.close()
    return len(done), encoded, rejected, written


class _ShardWriter:
    """Accumulates one planned shard in a temporary file; `finish` renames it into place and logs it."""

    def __init__(self, out: Path, chunk: Chunk, log_path: Path):
        self.out = out
        self.chunk = chunk
        self.log_path = log_path
        self.name = chunk.shard[: -len(".tar")]
        self.file: AtomicFile | None = None  # opened by the first sample, so an empty shard leaves no files
        self.tar = None
        self.samples: list[list] = []
        self.rejections: list[tuple[Rejection, str]] = []

    def add(self, key: str, label: int, record: Record, jpeg: bytes, facts: tuple[str, str],
            extra: dict | None = None) -> None:
        if self.file is None:
            self.file = AtomicFile(self.out / f"{self.name}.tar", "wb")
            self.tar = ShardTarWriter(self.file)
        meta = {"key": key, "label": record.label, **record.metadata(), **(extra or {})}
        members = self.tar.write_sample(
            key, {"cls": str(label).encode(), "jpg": jpeg, "json": json.dumps(meta, sort_keys=True).encode()}
        )
        jpg = next(m for m in members if m.extension == "jpg")
        self.samples.append([key, label, jpg.offset, jpg.size, zlib.crc32(jpeg), *facts])

    def finish(self) -> int:
        """Put the shard in place (if any sample reached it) and log it; the number of shard files written."""
        size = None
        if self.file is not None:
            self.tar.close()
            write_text(self.out / f"{self.name}.idx", self.tar.dali_index())
            size = self.tar.position
            self.file.commit()
            self.file = None  # committed: nothing left to discard
        log_shard(self.log_path, {
            "chunk": self.chunk.number,
            "split": self.chunk.split,
            "shard": self.chunk.shard if size is not None else None,
            "bytes": size,
            "rejections": [[r.path, r.reason, r.detail, label] for r, label in self.rejections],
            "samples": self.samples,
        })
        return int(size is not None)

    def discard(self) -> None:
        if self.file is not None:
            self.file.discard()
            self.file = None
