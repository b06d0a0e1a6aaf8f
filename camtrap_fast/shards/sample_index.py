"""The compact per-sample index: where every sample's JPEG lies, and its label.

One `index.npz` per split holds parallel integer arrays plus all keys packed
into one UTF-8 blob, so millions of samples load in milliseconds and the
sampler and random-access readers never parse a tar to find a sample.
Each sample's sequence id and source image (its relpath; several crops can
share one) are packed the same way, for per-sequence and per-image aggregation;
index files written before they existed load with empty strings.
`offsets`/`sizes` locate the JPEG payload itself (not the tar header), so a
reader fetches a sample with one `os.pread`. `crc32` is the CRC-32 (zlib's) of
each JPEG payload, so every read can tell a damaged sample from a good one: a
flipped bit in JPEG entropy data still decodes, to a wrong image. Indexes written
before it existed load with `crc32=None`, and their samples are read unchecked.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from camtrap_fast.atomic import open_atomic
from camtrap_fast.errors import Fault

INDEX_FILE = "index.npz"


@dataclass(frozen=True)
class SampleIndex:
    """Samples of one split, in shard order. Arrays are parallel; `shards` are paths relative to the split's parent."""

    labels: np.ndarray  # int32, class index per sample
    shard_ids: np.ndarray  # int32, position in `shards`
    offsets: np.ndarray  # int64, byte offset of the JPEG payload in its shard
    sizes: np.ndarray  # int64, JPEG payload size in bytes
    key_blob: bytes  # all keys, UTF-8, concatenated
    key_ends: np.ndarray  # int64, end offset of key i in `key_blob`
    shards: tuple[str, ...]
    sequence_blob: bytes = b""  # every sample's sequence id ("" when unknown), UTF-8, concatenated
    sequence_ends: np.ndarray | None = None  # int64; None: all empty
    source_blob: bytes = b""  # every sample's source image relpath, UTF-8, concatenated
    source_ends: np.ndarray | None = None  # int64; None: all empty
    crc32: np.ndarray | None = None  # uint32, CRC-32 of each JPEG payload; None in indexes from before it existed

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name in ("sequence_ends", "source_ends"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(n, dtype=np.int64))
        checked = ("shard_ids", "offsets", "sizes", "key_ends", "sequence_ends", "source_ends",
                   *(("crc32",) if self.crc32 is not None else ()))
        for name in checked:
            if len(getattr(self, name)) != n:
                raise ValueError(f"SampleIndex.{name} has {len(getattr(self, name))} entries, labels has {n}")

    def __len__(self) -> int:
        return len(self.labels)

    def key(self, i: int) -> str:
        start = int(self.key_ends[i - 1]) if i > 0 else 0
        return self.key_blob[start : int(self.key_ends[i])].decode("utf-8")

    def keys(self, indices=None) -> list[str]:
        indices = range(len(self)) if indices is None else indices
        return [self.key(int(i)) for i in indices]

    def sequence(self, i: int) -> str:
        return _unpack(self.sequence_blob, self.sequence_ends, i)

    def sequences(self, indices=None) -> list[str]:
        indices = range(len(self)) if indices is None else indices
        return [self.sequence(int(i)) for i in indices]

    def source(self, i: int) -> str:
        return _unpack(self.source_blob, self.source_ends, i)

    def sources(self, indices=None) -> list[str]:
        indices = range(len(self)) if indices is None else indices
        return [self.source(int(i)) for i in indices]

    def class_counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.labels, minlength=num_classes).astype(np.int64)

    @staticmethod
    def build(
        keys: list[str],
        labels: list[int],
        shard_ids: list[int],
        offsets: list[int],
        sizes: list[int],
        shards: list[str],
        sequences: list[str] | None = None,
        sources: list[str] | None = None,
        crc32: list[int] | None = None,
    ) -> "SampleIndex":
        encoded = [k.encode("utf-8") for k in keys]
        sequence_blob, sequence_ends = _pack(sequences, len(keys))
        source_blob, source_ends = _pack(sources, len(keys))
        return SampleIndex(
            labels=np.asarray(labels, dtype=np.int32),
            shard_ids=np.asarray(shard_ids, dtype=np.int32),
            offsets=np.asarray(offsets, dtype=np.int64),
            sizes=np.asarray(sizes, dtype=np.int64),
            key_blob=b"".join(encoded),
            key_ends=np.cumsum([len(k) for k in encoded], dtype=np.int64),
            shards=tuple(shards),
            sequence_blob=sequence_blob,
            sequence_ends=sequence_ends,
            source_blob=source_blob,
            source_ends=source_ends,
            crc32=None if crc32 is None else np.asarray(crc32, dtype=np.uint32),
        )

    def save(self, path: str | os.PathLike) -> None:
        with open_atomic(path, "wb") as f:
            np.savez(
                f,
                labels=self.labels,
                shard_ids=self.shard_ids,
                offsets=self.offsets,
                sizes=self.sizes,
                key_blob=np.frombuffer(self.key_blob, dtype=np.uint8),
                key_ends=self.key_ends,
                shards=np.asarray(self.shards, dtype=str),
                sequence_blob=np.frombuffer(self.sequence_blob, dtype=np.uint8),
                sequence_ends=self.sequence_ends,
                source_blob=np.frombuffer(self.source_blob, dtype=np.uint8),
                source_ends=self.source_ends,
                **({} if self.crc32 is None else {"crc32": self.crc32}),
            )

    @staticmethod
    def load(path: str | os.PathLike) -> "SampleIndex":
        try:
            with np.load(path, allow_pickle=False) as data:
                return SampleIndex(
                    labels=data["labels"],
                    shard_ids=data["shard_ids"],
                    offsets=data["offsets"],
                    sizes=data["sizes"],
                    key_blob=data["key_blob"].tobytes(),
                    key_ends=data["key_ends"],
                    shards=tuple(str(s) for s in data["shards"]),
                    # absent from index files written before sequences, sources and CRCs were recorded
                    sequence_blob=data["sequence_blob"].tobytes() if "sequence_blob" in data else b"",
                    sequence_ends=data["sequence_ends"] if "sequence_ends" in data else None,
                    source_blob=data["source_blob"].tobytes() if "source_blob" in data else b"",
                    source_ends=data["source_ends"] if "source_ends" in data else None,
                    crc32=data["crc32"] if "crc32" in data.files else None,
                )
        # A listed index that is missing or unreadable is damage to a finished shard directory, not a user mistake.
        except FileNotFoundError:
            raise Fault(f"{path}: sample index not found; the shard directory is incomplete "
                        "(run `camtrap-fast verify` on it, or shard again with --overwrite)") from None
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise Fault(f"{path}: damaged sample index ({error}); shard again with --overwrite") from None


def _pack(texts: list[str] | None, n: int) -> tuple[bytes, np.ndarray]:
    if texts is None:
        return b"", np.zeros(n, dtype=np.int64)
    if len(texts) != n:
        raise ValueError(f"{len(texts)} strings for {n} samples")
    encoded = [t.encode("utf-8") for t in texts]
    return b"".join(encoded), np.cumsum([len(t) for t in encoded], dtype=np.int64)


def _unpack(blob: bytes, ends: np.ndarray, i: int) -> str:
    start = int(ends[i - 1]) if i > 0 else 0
    return blob[start : int(ends[i])].decode("utf-8")
