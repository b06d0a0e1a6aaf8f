"""Small shard directories of real camera-trap photos for pipeline tests, and ways to damage them.

The photos come from ../shared/data (read in place, never copied into the
repository); they are shrunk once into a class-folder tree so that
`build_shards` (the real `camtrap-fast shard` code) runs in about a second.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from camtrap_fast.shards.manifest import Manifest, load_manifest

SOURCES = ("serengeti-samples/gallery", "serengeti-samples/labelled", "ena24-small")


def make_photo_shards(
    root: Path, data_dir: Path, images: int = 30, classes: int = 3, size: int = 64, shard_size: int = 8
) -> Manifest:
    """Shard `images` real photos, dealt round-robin into `classes` classes, shorter side `size`, all in train."""
    from camtrap_fast.ingest.splits import SplitConfig
    from camtrap_fast.shards.build import ShardJob, build_shards
    from camtrap_fast.shards.encode import EncodeConfig

    photos = sorted(p for source in SOURCES for p in (data_dir / source).iterdir() if p.suffix.lower() == ".jpg")
    if len(photos) < images:
        raise ValueError(f"only {len(photos)} photos in {data_dir}, asked for {images}")
    folder = root / "photos"
    for n, photo in enumerate(photos[:images]):
        out = folder / f"class{n % classes}" / f"{n:03d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(photo) as image:
            image.draft("RGB", (4 * size, 4 * size))  # the source photos are up to 5 MP; keep the fixture fast
            image.convert("RGB").save(out, quality=90)
    job = ShardJob(
        source=folder,
        out=root / "shards",
        encode=EncodeConfig(size=size),
        split=SplitConfig(fractions=(1.0, 0.0, 0.0), group_by="none"),
        shard_size=shard_size,
        progress=False,
    )
    build_shards(job)
    return load_manifest(root / "shards")


def copy_shards(manifest: Manifest, dest: Path) -> Manifest:
    shutil.copytree(manifest.root, dest)
    return load_manifest(dest)


def overwrite_payload(manifest: Manifest, sample: int, at: int, data: bytes, split: str = "train",
                      restamp_crc: bool = True) -> tuple[Path, str]:
    """Overwrite bytes of one sample's JPEG inside its tar; returns (shard path, key).

    With `restamp_crc` (the default) the index's CRC-32 is updated to the damaged bytes, so the damage
    reaches the decoders, as a JPEG that was bad before it was sharded would; without it, the damage is
    what happens to a shard on disk, which the readers' CRC-32 check catches before any decoder."""
    index = manifest.load_index(split)
    shard = manifest.root / index.shards[int(index.shard_ids[sample])]
    offset = int(index.offsets[sample]) + (at if at >= 0 else int(index.sizes[sample]) + at)
    with open(shard, "r+b") as f:
        f.seek(offset)
        f.write(data)
        if restamp_crc and index.crc32 is not None:
            f.seek(int(index.offsets[sample]))
            index.crc32[sample] = zlib.crc32(f.read(int(index.sizes[sample])))
    if restamp_crc and index.crc32 is not None:
        index.save(manifest.index_path(split))
    return shard, index.key(sample)


def flip_bit(manifest: Manifest, sample: int, split: str = "train") -> tuple[Path, str]:
    """Flip one bit inside a sample's JPEG entropy-coded data, as a bad disk would, choosing (from the middle
    on) the first bit whose flip still decodes, to other pixels: the damage no decoder notices. The index is
    left alone. Returns (shard path, key)."""
    index = manifest.load_index(split)
    shard = manifest.root / index.shards[int(index.shard_ids[sample])]
    start, size = int(index.offsets[sample]), int(index.sizes[sample])
    with open(shard, "rb") as f:
        f.seek(start)
        jpeg = f.read(size)
    original = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    for at in range(size // 2, size - 2):
        if jpeg[at] == 0xFF or jpeg[at - 1] == 0xFF or jpeg[at] ^ 0x01 == 0xFF:
            continue  # keep marker bytes and byte stuffing as they are
        damaged = jpeg[:at] + bytes([jpeg[at] ^ 0x01]) + jpeg[at + 1:]
        try:
            pixels = np.asarray(Image.open(io.BytesIO(damaged)).convert("RGB"))
        except OSError:
            continue
        if pixels.shape == original.shape and (pixels != original).any():
            with open(shard, "r+b") as f:
                f.seek(start + at)
                f.write(damaged[at:at + 1])
            return shard, index.key(sample)
    raise AssertionError(f"no silent bit flip found in sample {sample}")


def truncate_in(manifest: Manifest, sample: int, keep: int = 100, split: str = "train") -> tuple[Path, str]:
    """Cut the tar holding `sample` off `keep` bytes into that sample's JPEG; returns (shard path, key)."""
    index = manifest.load_index(split)
    shard = manifest.root / index.shards[int(index.shard_ids[sample])]
    with open(shard, "r+b") as f:
        f.truncate(int(index.offsets[sample]) + keep)
    return shard, index.key(sample)


def payload(manifest: Manifest, sample: int, split: str = "train") -> bytes:
    """A sample's JPEG read with tarfile, independently of the readers under test."""
    index = manifest.load_index(split)
    with tarfile.open(manifest.root / index.shards[int(index.shard_ids[sample])]) as tar:
        return tar.extractfile(f"{index.key(sample)}.jpg").read()
