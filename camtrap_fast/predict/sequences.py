"""Sequences: which frames (and crops) belong to one capture, and their pooled class probabilities.

A motion-triggered camera takes a burst of frames per event; an animal walking out of view leaves frames
where it is hard to see, but they share the event's label, and what ecologists count is events. A
sequence's probabilities are the mean of its classified items' (frames, or every crop of every frame).

Sequence ids come from the user's own metadata when given (`--sequences`: a COCO Camera Traps file's
`seq_id`, a Camtrap DP package's events), else from bursts: photos of one folder whose EXIF capture times
lie within `burst_seconds` of the previous one. A photo with no capture time is a sequence of its own.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from camtrap_fast.metrics import pool_by_group
from camtrap_fast.predict.classify import Classified
from camtrap_fast.predict.items import Item

EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003  # in the Exif IFD
DATETIME = 0x0132  # in IFD0: when the file was written, the fallback


@functools.lru_cache(maxsize=65536)  # bursts and the Camtrap DP writer both ask: read each header once
def capture_time(path: str) -> dt.datetime | None:
    """The photo's EXIF capture time (camera-local, no time zone), or None when it has none or cannot be read."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            text = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    except (OSError, SyntaxError, ValueError):
        return None
    try:
        return dt.datetime.strptime(str(text).strip("\0 "), "%Y:%m:%d %H:%M:%S") if text else None
    except ValueError:
        return None


def burst_ids(items: Sequence[Item], burst_seconds: float) -> list[str]:
    """Per item, its burst: `burst:FILE` named after the burst's first photo, or `frame:FILE` without a time."""
    times = {item.path: capture_time(item.path) for item in items}
    by_folder: dict[str, list[tuple[dt.datetime, str, str]]] = {}
    for path, file in {item.path: item.file for item in items}.items():
        if times[path] is not None:
            by_folder.setdefault(os.path.dirname(os.path.abspath(path)), []).append((times[path], file, path))
    burst_of: dict[str, str] = {}
    for frames in by_folder.values():
        frames.sort()
        first, previous = None, None
        for time, file, path in frames:
            if previous is None or (time - previous).total_seconds() > burst_seconds:
                first = file
            burst_of[path] = f"burst:{first}"
            previous = time
    return [burst_of.get(item.path, f"frame:{item.file}") for item in items]


def load_sequence_source(source: Path, image_root: Path | None = None) -> dict[str, str]:
    """Photo (absolute path) -> its sequence in `source` (COCO CT seq_id / Camtrap DP eventID / CSV seq_id, as
    the source names it; relative paths resolved against `image_root`, else the source's own folder)."""
    from camtrap_fast.errors import UserError
    from camtrap_fast.ingest import load_records

    _, records = load_records(source, image_root=image_root)
    sequence_of = {os.path.abspath(r.path): r.seq_id for r in records if r.seq_id}
    if not sequence_of:
        raise UserError(f"--sequences {source}: names no sequences (no seq_id, or eventID in a Camtrap DP "
                        "package); leave it out to group photos into bursts by EXIF time")
    return sequence_of


def source_ids(items: Sequence[Item], sequence_of: dict[str, str]) -> tuple[list[str], int]:
    """Per item, the sequence its photo has in `sequence_of` (`load_sequence_source`), and how many photos it
    does not list (each then `frame:FILE`, its own)."""
    ids, unmatched = [], set()
    for item in items:
        seq = sequence_of.get(os.path.abspath(item.path))
        if seq is None:
            unmatched.add(item.path)
        ids.append(seq if seq is not None else f"frame:{item.file}")
    return ids, len(unmatched)


def pooled(classified: Sequence[Classified], ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Sequence id -> the mean class probabilities of its classified items (sequences with none are absent);
    the same rule as `eval --aggregate sequence` (metrics.pool_by_group)."""
    rows = [(result.probs, seq) for result, seq in zip(classified, ids) if result.probs is not None]
    if not rows:
        return {}
    groups, means = pool_by_group(np.stack([probs for probs, _ in rows]), [seq for _, seq in rows])
    return {seq: mean.astype(np.float32) for seq, mean in zip(groups, means)}
