"""First-frame test sets (`eval --frames first`): the samples of the first frame of each capture sequence.

A motion-triggered burst keeps the event's label on every frame, also on the later ones taken after the animal
left; the fast.ai Serengeti classifier therefore tests on the first frame of each sequence only. What a shard
records per sample: the sequence id and source image in index.npz, and frame_num / datetime in the sample's
`json` member when the source gave them (COCO Camera Traps, CSV columns, Camtrap DP timestamps). So:

- a sequence is the samples sharing a sequence id; a sample without one is a sequence of its own frame (its
  source image, which may hold several crops);
- its frames are its distinct source images, ordered by frame_num when every frame has one, else by datetime
  when every frame has one (ISO 8601; offsets honoured), else by their first sample key (the source's order);
- the first frame's samples (every crop of it) are kept.

A split whose index records no sequence id at all has nothing to choose from: refused (FramesUnknown).
"""

from __future__ import annotations

import datetime as dt
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from camtrap_fast.errors import UserError
from camtrap_fast.shards.manifest import Manifest

FRAMES = ("all", "first")


class FramesUnknown(UserError):
    """The split records no sequences to take first frames of."""


@dataclass(frozen=True)
class FirstFrames:
    mask: np.ndarray  # bool (n,) over the positions asked about
    sequences: int
    ordered_by: dict[str, int]  # sequences of several frames ordered by frame_num / datetime / key

    def describe(self) -> str:
        """e.g. "102 samples, the first frames of 102 sequences (68 of several frames: 68 ordered by frame_num)"."""
        orders = ", ".join(f"{n} ordered by {how}" for how, n in self.ordered_by.items() if n)
        several = sum(self.ordered_by.values())
        return (f"{int(self.mask.sum())} samples, the first frames of {self.sequences} sequences"
                + (f" ({several} of several frames: {orders})" if orders else ""))


def frame_facts(manifest: Manifest, split: str) -> dict[str, tuple[int | None, str | None]]:
    """key -> (frame_num, datetime) from the `json` members of the split's tars (the JPEGs are not read)."""
    facts = {}
    for path in manifest.shard_paths(split):
        try:
            with tarfile.open(path) as tar:
                for member in tar:
                    if not member.name.endswith(".json"):
                        continue
                    meta = json.loads(tar.extractfile(member).read())
                    frame = meta.get("frame_num")
                    facts[meta["key"]] = (frame if isinstance(frame, int) else None, meta.get("datetime"))
        except (OSError, tarfile.TarError, ValueError, KeyError) as error:
            raise UserError(f"{path}: cannot read the samples' json members ({error}); "
                            f"`camtrap-fast verify {manifest.root}` checks the shards") from None
    return facts


def first_frames(keys: Sequence[str], sequences: Sequence[str], sources: Sequence[str],
                 facts: dict[str, tuple[int | None, str | None]], where: str) -> FirstFrames:
    """Which of these samples belong to the first frame of their sequence (see the module docstring)."""
    if not any(sequences):
        raise FramesUnknown(f"{where}: the shards record no sequence ids (seq_id), so there is no first frame to "
                            "choose; --frames first needs a source with sequences (COCO Camera Traps seq_id, a CSV "
                            "seq_id column, Camtrap DP events)")
    frames_of: dict[str, dict[str, list[int]]] = {}  # sequence -> frame (source image) -> sample rows
    for row, (key, seq, source) in enumerate(zip(keys, sequences, sources)):
        frame = source or key
        group = f"seq:{seq}" if seq else f"frame:{frame}"
        frames_of.setdefault(group, {}).setdefault(frame, []).append(row)
    mask = np.zeros(len(keys), dtype=bool)
    ordered_by = {"frame_num": 0, "datetime": 0, "key": 0}
    for frames in frames_of.values():
        how, first = _first(frames, keys, facts)
        if len(frames) > 1:
            ordered_by[how] += 1
        mask[frames[first]] = True
    return FirstFrames(mask, len(frames_of), ordered_by)


def _first(frames: dict[str, list[int]], keys: Sequence[str], facts) -> tuple[str, str]:
    def fact(frame: str, i: int):
        return next((facts[keys[r]][i] for r in frames[frame] if facts.get(keys[r], (None, None))[i] is not None),
                    None)

    numbers = {frame: fact(frame, 0) for frame in frames}
    if all(n is not None for n in numbers.values()):
        return "frame_num", min(frames, key=lambda f: (numbers[f], min(keys[r] for r in frames[f])))
    times = {frame: _time(fact(frame, 1)) for frame in frames}
    if all(t is not None for t in times.values()):
        try:
            return "datetime", min(frames, key=lambda f: (times[f], min(keys[r] for r in frames[f])))
        except TypeError:  # some times with a UTC offset, some without: not comparable
            pass
    return "key", min(frames, key=lambda f: min(keys[r] for r in frames[f]))


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return dt.datetime.strptime(str(text).strip(), "%Y:%m:%d %H:%M:%S")  # EXIF's form
        except ValueError:
            return None


def split_first_frames(manifest: Manifest, split: str, positions: Sequence[int]) -> FirstFrames:
    """first_frames for the split samples at `positions` (the ones a model was scored on)."""
    index = manifest.load_index(split)
    return first_frames(index.keys(positions), index.sequences(positions), index.sources(positions),
                        frame_facts(manifest, split), f"{manifest.root / split}")
