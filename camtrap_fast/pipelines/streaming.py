"""An epoch's samples as read from shards: at random offsets (`iter_epoch_samples`), or streamed from shards
that cannot be read at random offsets (`stream_epoch`: http(s)://, s3://, pipe:, gs://).

Same epoch, different access pattern: each sample is emitted as many times as
`epoch_multiplicity` says for (seed, epoch), so per-class totals match the
random-access order exactly. What streaming cannot do is skip bytes: every
shard is read in full, but members of samples with multiplicity 0 are never
copied out of the tar stream, and nothing is decoded here.

Shards are shuffled per (seed, epoch), then a seeded shuffle buffer mixes
samples; copies of one image enter the buffer together, so they spread over
about `shuffle_buffer` positions rather than the whole epoch.
"""

from __future__ import annotations

import re
import shlex
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

import numpy as np

from camtrap_fast.errors import Fault, UserError
from camtrap_fast.sampling.order import epoch_multiplicity, epoch_rng
from camtrap_fast.sampling.plan import SamplingPlan
from camtrap_fast.shards.reader import DamagedSample, ShardReader, check_payload
from camtrap_fast.shards.sample_index import SampleIndex

T = TypeVar("T")

# Random streams per (seed, epoch) beside the multiplicity draw, which uses (seed, epoch) alone, as epoch_order does.
_SHARD_ORDER_STREAM = 1
_SHUFFLE_BUFFER_STREAM = 2


def stream_epoch(
    shard_urls: Sequence[str],
    samples: SampleIndex | Mapping[str, int],
    plan: SamplingPlan,
    seed: int,
    epoch: int,
    shuffle_buffer: int = 10_000,
    *,
    part: tuple[int, int] = (0, 1),
    on_damaged: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, bytes, int]]:
    """(key, jpg_bytes, label) for one epoch, read sequentially through webdataset's URL openers.

    `samples` gives every sample's label (a split's SampleIndex, or {key: label});
    the plan must have been made from those labels. With a SampleIndex, every
    streamed JPEG is checked against its size and CRC-32; a damaged one raises
    `DamagedSample`, or, given `on_damaged`, is passed to it by message and left out. `part=(i, k)` streams the
    i-th of k round-robin slices of the epoch's shuffled shard list (one per
    DataLoader worker or rank): the k parts together are exactly the epoch.
    With one part, every sample the epoch draws must turn up in the shards.
    """
    part_index, part_count = part
    if not 0 <= part_index < part_count:
        raise ValueError(f"part must be (i, k) with 0 <= i < k, got {part}")
    if shuffle_buffer < 0:
        raise ValueError(f"shuffle_buffer must be >= 0 samples, got {shuffle_buffer}")
    index = samples if isinstance(samples, SampleIndex) else None
    if index is not None:
        keys, labels = index.keys(), np.asarray(index.labels)
    else:
        keys, labels = list(samples), np.fromiter(samples.values(), dtype=np.int64, count=len(samples))
    multiplicity = epoch_multiplicity(labels, plan, seed, epoch)
    shard_order = epoch_rng(seed, epoch, _SHARD_ORDER_STREAM).permutation(len(shard_urls))
    urls = [shard_urls[i] for i in shard_order[part_index::part_count].tolist()]
    drawn = _drawn_samples(urls, _KeyPositions(keys), labels, multiplicity, check_complete=part_count == 1,
                           index=index, on_damaged=on_damaged)
    rng = epoch_rng(seed, epoch, _SHUFFLE_BUFFER_STREAM, part_index)
    return _shuffled(drawn, shuffle_buffer, rng)


class _KeyPositions:
    """key -> sample position via a sorted fixed-width bytes array: a few bytes per key, unlike a dict's ~150."""

    def __init__(self, keys: list[str]):
        encoded = np.array([k.encode("utf-8") for k in keys], dtype=np.bytes_)
        self._order = np.argsort(encoded, kind="stable")
        self._sorted = encoded[self._order]
        self._last: tuple[str, int] = ("", -1)  # a sample's members arrive together: look its key up once

    def __call__(self, key: str) -> int:
        """Position of `key`, or -1 when it is not there."""
        if key == self._last[0]:
            return self._last[1]
        encoded = key.encode("utf-8")
        j = int(np.searchsorted(self._sorted, encoded))
        position = int(self._order[j]) if j < len(self._sorted) and self._sorted[j] == encoded else -1
        self._last = (key, position)
        return position

    def key(self, position: int) -> str:
        """The key at `position` (slow: for error messages)."""
        return self._sorted[int(np.flatnonzero(self._order == position)[0])].decode("utf-8")


def _drawn_samples(
    urls: list[str],
    position_of: _KeyPositions,
    labels: np.ndarray,
    multiplicity: np.ndarray,
    check_complete: bool,
    index: SampleIndex | None = None,
    on_damaged: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, bytes, int]]:
    from webdataset import tariterators  # only streaming needs webdataset

    def wanted(member_name: str) -> bool:
        # Decided from the member name alone, so dropped samples' bytes are skipped in the tar stream, never copied.
        key, extension = tariterators.base_plus_ext(member_name)
        if key is None or extension.lower() not in ("jpg", "cls"):
            return False
        position = position_of(key)
        return position < 0 or multiplicity[position] > 0  # unknown keys pass so the error below can name them

    seen = np.zeros(len(labels), dtype=bool)
    opened = tariterators.url_opener({"url": _opener_url(url)} for url in urls)
    members = tariterators.tar_file_expander(opened, select_files=wanted)
    try:
        for sample in tariterators.group_by_keys(members):
            key, url = sample["__key__"], sample["__url__"]
            position = position_of(key)
            if position < 0:
                raise UserError(f"{url}: sample '{key}' is not in the sample index; stream the shards it was built from")
            if "jpg" not in sample or "cls" not in sample:
                raise Fault(f"{url}: sample '{key}' lacks its .jpg or .cls member; re-write this shard")
            label = int(labels[position])
            if int(sample["cls"]) != label:
                shard_label = int(sample["cls"])
                raise Fault(f"{url}: sample '{key}' has class {shard_label} in the shard, {label} in the index")
            if seen[position]:
                raise Fault(f"{url}: sample '{key}' appears twice in the shards; is a shard listed twice?")
            seen[position] = True
            jpg = sample["jpg"]
            if index is not None:
                try:
                    check_payload(index, position, jpg, url)
                except DamagedSample as damaged:
                    if on_damaged is None:
                        raise
                    on_damaged(str(damaged))
                    continue
            for _ in range(int(multiplicity[position])):
                yield key, jpg, label  # copies share one bytes object
    except FileNotFoundError as error:
        raise UserError(f"{error.filename or error.args[-1]}: shard not found") from None
    except (tarfile.TarError, OSError) as error:  # an unreachable URL, a failing pipe, a cut-off stream
        where = next((arg for arg in reversed(error.args) if isinstance(arg, str) and "://" in arg or
                      isinstance(arg, str) and arg.startswith("pipe:")), None) or ", ".join(urls[:1]) or "?"
        detail = error.args[0] if error.args and isinstance(error.args[0], str) else type(error).__name__
        status = re.search(r"exit (\d+) \(read\)", str(error))  # webdataset's words for a failed curl/pipe
        if status:
            detail = f"the reader command exited with status {status.group(1)}"
        raise Fault(f"{where}: cannot read the shard stream ({detail}); check --stream-from and that the "
                    "shards are there") from None
    if check_complete:
        missing = np.flatnonzero((multiplicity > 0) & ~seen)
        if missing.size:
            raise UserError(
                f"{missing.size} samples this epoch draws were not in the {len(urls)} shards streamed "
                f"(first: '{position_of.key(missing[0])}'); stream every shard of the split"
            )


def _opener_url(url: str) -> str:
    # webdataset has no s3:// opener of its own; its documented route is a pipe through the AWS CLI.
    if url.startswith("s3://"):
        return f"pipe:aws s3 cp --quiet {shlex.quote(url)} -"
    return url


def _shuffled(items: Iterable[T], buffer_size: int, rng: np.random.Generator) -> Iterator[T]:
    """A seeded shuffle buffer: once full, each incoming item replaces a uniformly chosen one, which is emitted."""
    if buffer_size <= 1:
        yield from items
        return
    buffer: list[T] = []
    draws = iter(())
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        u = next(draws, None)
        if u is None:  # random numbers in blocks: one Generator call per item would dominate the loop
            draws = iter(rng.random(4096).tolist())
            u = next(draws)
        j = int(u * buffer_size)
        yield buffer[j]
        buffer[j] = item
    for j in rng.permutation(len(buffer)).tolist():
        yield buffer[j]


def iter_epoch_samples(reader: ShardReader, order: np.ndarray) -> Iterator[tuple[int, bytes, int]]:
    """(index, jpg_bytes, label) in epoch order; samples the plan drops are never read because they are not in it."""
    labels = reader.index.labels
    for i in np.asarray(order).tolist():
        yield i, reader.read(i), int(labels[i])
