"""Tiny shard directories for sampling tests and benchmarks, written with tarfile alone.

Same layout as `camtrap-fast shard` output: `train/shard-NNNNNN.tar` WebDataset
tars (KEY.cls, KEY.jpg, KEY.json per sample), `train/index.npz`, and
`manifest.json` written last. Payloads are not real JPEGs (nothing here decodes):
`b"jpg:KEY"` padded to `payload_bytes`, so a test can tell which sample it got.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from camtrap_fast.shards.manifest import Manifest, SplitInfo
from camtrap_fast.shards.sample_index import INDEX_FILE, SampleIndex


def payload(key: str, payload_bytes: int = 0) -> bytes:
    head = f"jpg:{key}".encode()
    return head + bytes(max(0, payload_bytes - len(head)))


def make_shard_dir(
    root: Path,
    class_counts: dict[str, int],
    samples_per_shard: int = 50,
    payload_bytes: int = 0,
    seed: int = 0,
) -> Path:
    """Write a shard directory holding class_counts[c] train samples of class c, classes interleaved."""
    root = Path(root)
    (root / "train").mkdir(parents=True, exist_ok=True)
    labels = np.repeat(np.arange(len(class_counts)), list(class_counts.values()))
    labels = np.random.default_rng(seed).permutation(labels)  # a real writer interleaves classes too
    keys = [f"s{i:07d}" for i in range(len(labels))]
    shards, shard_ids, offsets, sizes = [], [], [], []
    for shard_id, start in enumerate(range(0, len(labels), samples_per_shard)):
        rel = f"train/shard-{shard_id:06d}.tar"
        shards.append(rel)
        with tarfile.open(root / rel, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(start, min(start + samples_per_shard, len(labels))):
                for ext, data in (
                    ("cls", str(labels[i]).encode()),
                    ("jpg", payload(keys[i], payload_bytes)),
                    ("json", json.dumps({"key": keys[i]}).encode()),
                ):
                    info = tarfile.TarInfo(f"{keys[i]}.{ext}")
                    info.size, info.mtime = len(data), 0
                    tar.addfile(info, io.BytesIO(data))
        with tarfile.open(root / rel) as tar:  # read back where each payload landed
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    shard_ids.append(shard_id)
                    offsets.append(member.offset_data)
                    sizes.append(member.size)
    SampleIndex.build(keys, labels.tolist(), shard_ids, offsets, sizes, shards).save(root / "train" / INDEX_FILE)
    Manifest(
        classes=tuple(class_counts),
        splits={"train": SplitInfo(samples=len(labels), class_counts=dict(class_counts), shards=tuple(shards))},
        image_size=0,
        quality=0,
        fingerprint="test",
        rejected=0,
        root=root,
    ).save()
    return root
