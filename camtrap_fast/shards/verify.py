"""`camtrap-fast verify`: every tar of a shard directory read once, front to back, and checked against its
index, its DALI `.idx` and the manifest.

For each sample: its members are there and well formed, the JPEG lies at the offset and has the size the
index says, its CRC-32 is the one written at shard time (this is what finds a flipped bit inside JPEG
entropy data, which decodes without complaint), and `.cls` holds the index's label. For each shard: the
`.idx` file is exactly the one its members imply. For each split: the index agrees with the manifest
(samples, classes, shards) and no shard file is missing or left over. The tars are read sequentially with
large buffers and tar headers are parsed here, so a damaged header is named by its offset instead of
ending the archive early, as `tarfile`'s reader would.
"""

from __future__ import annotations

import csv
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camtrap_fast.errors import Fault
from camtrap_fast.shards.manifest import MANIFEST_FILE, SPLITS, Manifest, index_mismatch, load_manifest
from camtrap_fast.shards.out_dir import REJECTED_FILE, SHARD_FILE
from camtrap_fast.shards.sample_index import INDEX_FILE, SampleIndex
from camtrap_fast.shards.tar_writer import BLOCK

READ_BUFFER = 4 << 20  # sequential reads in 4 MiB: a disk's or page cache's full speed


@dataclass(frozen=True)
class Problem:
    path: Path
    what: str
    key: str | None = None

    def line(self) -> str:
        return f"{self.path}: sample '{self.key}' {self.what}" if self.key is not None else f"{self.path}: {self.what}"


@dataclass
class VerifyReport:
    root: Path
    shards: int = 0
    samples: int = 0
    bytes: int = 0
    seconds: float = 0.0
    unchecked_crc: list[str] = field(default_factory=list)  # splits whose index predates CRC-32
    problems: list[Problem] = field(default_factory=list)

    @property
    def damaged_shards(self) -> list[Path]:
        return sorted({p.path for p in self.problems})


@dataclass
class _Member:
    offset: int  # of the payload
    size: int
    data: bytes | None  # kept for .cls; None for payloads only checksummed
    crc: int


def verify_shards(root: str | os.PathLike, on_bytes: Callable[[int], None] | None = None) -> VerifyReport:
    """Check a shard directory; damage is reported in the result, not raised (a bad manifest still raises)."""
    started = time.perf_counter()
    manifest = load_manifest(root)
    report = VerifyReport(manifest.root)
    for split in SPLITS:
        _verify_split(manifest, split, report, on_bytes or (lambda n: None))
    _verify_rejected(manifest, report)
    report.seconds = time.perf_counter() - started
    return report


def _verify_split(manifest: Manifest, split: str, report: VerifyReport, on_bytes) -> None:
    root = manifest.root
    info = manifest.splits.get(split)
    listed = set(info.shards) if info is not None and info.samples else set()
    folder = root / split
    try:
        names = os.listdir(folder) if folder.is_dir() else []
        on_disk = sorted(f"{split}/{n}" for n in names if SHARD_FILE.fullmatch(n))
    except OSError as error:
        report.problems.append(Problem(folder, f"cannot be listed ({error.strerror or error})"))
        on_disk = []
    for name in on_disk:
        tar = name if name.endswith(".tar") else name[:-4] + ".tar"
        if tar not in listed:
            report.problems.append(Problem(root / name, f"is not listed in {MANIFEST_FILE} (a left-over shard file)"))
    if not listed:
        return
    index_path = root / split / INDEX_FILE
    try:
        index = SampleIndex.load(index_path)
    except Fault as error:
        report.problems.append(Problem(index_path, str(error).split(": ", 1)[-1]))
        return
    mismatch = index_mismatch(index, info, manifest.classes)
    if mismatch:
        report.problems.append(Problem(index_path, f"does not match {MANIFEST_FILE}: {mismatch}"))
    if index.crc32 is None:
        report.unchecked_crc.append(split)
    for shard_id, shard in enumerate(index.shards):
        rows = np.flatnonzero(index.shard_ids == shard_id)
        _verify_shard(root / shard, index, rows, report, on_bytes)


def _verify_shard(path: Path, index: SampleIndex, rows: np.ndarray, report: VerifyReport, on_bytes) -> None:
    report.shards += 1
    if not path.is_file():
        report.problems.append(Problem(path, f"is missing ({len(rows)} samples of the index are in it)"))
        return
    try:
        members, damage = _read_tar(path, on_bytes)
        report.bytes += path.stat().st_size
    except OSError as error:  # permission refused, an I/O error from the disk: this shard, not the run
        report.problems.append(Problem(path, f"cannot be read ({error.strerror or error})"))
        return
    report.problems += damage
    expected = {index.key(int(i)): int(i) for i in rows}
    for key, exts in members.items():
        if key not in expected:
            report.problems.append(Problem(path, "is in the tar but not in the index", key))
    cut_off = [key for key in expected if key not in members]
    if cut_off:
        what = "is missing from the tar" + (f" ({len(cut_off)} samples are)" if len(cut_off) > 1 else "")
        report.problems.append(Problem(path, what, cut_off[0]))
    for key, i in expected.items():
        if key in members:
            report.samples += 1
            problem = _sample_problem(index, i, members[key])
            if problem:
                report.problems.append(Problem(path, problem, key))
    idx = path.with_suffix(".idx")
    if not damage and not cut_off:
        try:
            written = idx.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            report.problems.append(Problem(idx, f"cannot be read ({getattr(error, 'strerror', None) or error})"))
            return
        if written != _dali_index(members):
            report.problems.append(Problem(idx, "does not match its tar (DALI would read wrong bytes); "
                                                "it can be rebuilt from the tar with DALI's wds2idx"))


def _sample_problem(index: SampleIndex, i: int, exts: dict[str, _Member]) -> str | None:
    missing = [ext for ext in ("cls", "jpg", "json") if ext not in exts]
    if missing:
        return f"lacks its .{', .'.join(missing)} member"
    jpg = exts["jpg"]
    if (jpg.offset, jpg.size) != (int(index.offsets[i]), int(index.sizes[i])):
        return (f"has its JPEG at byte {jpg.offset} ({jpg.size} bytes), the index says byte "
                f"{int(index.offsets[i])} ({int(index.sizes[i])} bytes)")
    if index.crc32 is not None and jpg.crc != int(index.crc32[i]):
        return "is damaged (CRC32 mismatch in its JPEG)"
    try:
        label = int(exts["cls"].data)
    except ValueError:
        return f"has a damaged .cls member ({exts['cls'].data[:20]!r})"
    if label != int(index.labels[i]):
        return f"has class {label} in the tar, {int(index.labels[i])} in the index"
    return None


def _read_tar(path: Path, on_bytes) -> tuple[dict[str, dict[str, _Member]], list[Problem]]:
    """{key: {ext: member}} in tar order, and what was found wrong with the archive itself."""
    members: dict[str, dict[str, _Member]] = {}
    problems = []
    with open(path, "rb", buffering=READ_BUFFER) as f:
        offset = 0
        while True:
            header = f.read(BLOCK)
            if len(header) < BLOCK:
                problems.append(Problem(path, f"is cut off at byte {path.stat().st_size} (no end-of-archive marker)"))
                break
            if header == bytes(BLOCK):
                break  # end-of-archive marker; what follows is padding
            try:
                name, size = _parse_header(header)
            except ValueError as error:
                after = f" after sample '{next(reversed(members))}'" if members else ""
                problems.append(Problem(path, f"has a damaged tar header at byte {offset}{after} ({error})"))
                break
            data_offset = offset + BLOCK
            data = f.read(size)
            f.read(-size % BLOCK)
            on_bytes(BLOCK + size)
            if len(data) < size:
                problems.append(Problem(path, f"is cut off inside member '{name}' ({len(data)} of {size} bytes)"))
                break
            key, _, ext = name.partition(".")
            kept = data if ext == "cls" else None
            entry = members.setdefault(key, {})
            if ext in entry:
                problems.append(Problem(path, f"holds member '{name}' twice", key))
            entry[ext] = _Member(data_offset, size, kept, zlib.crc32(data) if ext == "jpg" else 0)
            offset = data_offset + size + (-size % BLOCK)
    return members, problems


def _parse_header(header: bytes) -> tuple[str, int]:
    """(member name, payload size) of a USTAR header block of a regular file, as `ShardTarWriter` writes them;
    ValueError saying what is wrong. Done here because `tarfile.TarInfo.frombuf` costs 4x more per member."""
    stored = header[148:156].split(b"\0", 1)[0].strip()
    try:
        checksum = int(stored, 8)
    except ValueError:
        raise ValueError(f"unreadable checksum {stored[:8]!r}") from None
    if checksum != sum(header[:148]) + sum(header[156:]) + 8 * 0x20:  # the checksum field counts as spaces
        raise ValueError("bad checksum")
    if header[156:157] not in (b"0", b"\0"):
        raise ValueError(f"member type {header[156:157]!r} is not a regular file")
    try:
        size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        name = header[:100].split(b"\0", 1)[0].decode("utf-8")
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"unreadable name or size ({error})") from None
    prefix = header[345:500].split(b"\0", 1)[0]
    return (f"{prefix.decode('utf-8', 'replace')}/{name}" if prefix else name), size


def _dali_index(members: dict[str, dict[str, _Member]]) -> str:
    """The `.idx` text these members imply, as `ShardTarWriter.dali_index` writes it (extensions in order)."""
    lines = [f"v1.2 {len(members)}"]
    for key, exts in members.items():
        lines.append(" ".join(f"{ext} {m.offset} {m.size} {key}.{ext}" for ext, m in sorted(exts.items())))
    return "\n".join(lines) + "\n"


def _verify_rejected(manifest: Manifest, report: VerifyReport) -> None:
    path = manifest.root / REJECTED_FILE
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = sum(1 for _ in csv.DictReader(f))
    except FileNotFoundError:
        report.problems.append(Problem(path, "is missing"))
        return
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        report.problems.append(Problem(path, f"cannot be read ({error})"))
        return
    if rows != manifest.rejected:
        report.problems.append(Problem(path, f"lists {rows} rejections, {MANIFEST_FILE} says {manifest.rejected}"))
