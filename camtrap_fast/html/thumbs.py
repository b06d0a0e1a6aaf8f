"""Photo thumbnails for the pages, read from the run's shards, under one byte budget per page.

A report shows the test photos behind its numbers as small JPEGs embedded as data: URIs, each embedded
once however many strips show it. The budget (`ThumbnailBudget.max_bytes`) is what keeps a report of a
52-class run under `page.MAX_PAGE_BYTES`; photos asked for after it is spent are counted and left out.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from camtrap_fast.html.page import data_uri
from camtrap_fast.shards.reader import ShardReader
from camtrap_fast.shards.sample_index import SampleIndex

THUMBNAIL_PX = 112  # the longer side; a shard image already this small is embedded as it is
FRAME_PX = 480
QUALITY = 72
MAX_THUMBNAIL_BYTES = 11 * 1024 * 1024  # base64 text of every embedded image; the rest of a page is < 1 MB


def _jpeg(image, quality: int = QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def thumbnail(data: bytes, size: int = THUMBNAIL_PX) -> bytes:
    """The JPEG itself when small enough, else a re-encoded thumbnail (EXIF orientation applied)."""
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(data))
    if max(image.size) <= size and image.format == "JPEG" and image.getexif().get(0x0112, 1) == 1:
        return data
    image = ImageOps.exif_transpose(image).convert("RGB")
    image.thumbnail((size, size))
    return _jpeg(image)


@dataclass
class ThumbnailBudget:
    """Embedded images by id (data: URIs), and how many were refused once `max_bytes` was spent."""

    max_bytes: int = MAX_THUMBNAIL_BYTES
    images: dict[str, str] = field(default_factory=dict)
    used: int = 0
    left_out: int = 0

    def add(self, image_id: str, make) -> str | None:
        """The id, embedding `make()`'s JPEG bytes the first time; None when over budget."""
        if image_id in self.images:
            return image_id
        uri = data_uri(make(), "image/jpeg")
        if self.used + len(uri) > self.max_bytes:
            self.left_out += 1
            return None
        self.images[image_id] = uri
        self.used += len(uri)
        return image_id


class SplitPhotos:
    """One split's samples: key -> position, thumbnails, each sample's json, its sequence and source."""

    def __init__(self, index: SampleIndex, root: Path):
        self.index = index
        self.root = root
        self.reader = ShardReader(index, root)
        self.position = {key: i for i, key in enumerate(index.keys())}
        self.sequences = index.sequences()
        self.sources = index.sources()
        self._captures: dict[str, list[int]] | None = None

    def close(self) -> None:
        self.reader.close()

    def jpeg(self, i: int) -> bytes:
        return self.reader.read(i)

    def sample_json(self, i: int) -> dict:
        """KEY.json, the tar member written right after KEY.jpg (members go in extension order: cls, jpg, json);
        {} when the shard holds no such member there."""
        path = self.root / self.index.shards[int(self.index.shard_ids[i])]
        end = int(self.index.offsets[i]) + int(self.index.sizes[i])
        header_at = end + (-end % tarfile.BLOCKSIZE)
        with open(path, "rb") as handle:
            header = os.pread(handle.fileno(), tarfile.BLOCKSIZE, header_at)
            try:
                info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
            except tarfile.TarError:
                return {}
            if info.name != f"{self.index.key(i)}.json" or info.size > 1 << 20:
                return {}
            data = os.pread(handle.fileno(), info.size, header_at + tarfile.BLOCKSIZE)
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}

    def same_sequence(self, i: int, limit: int) -> list[int]:
        """The split's samples of sample i's capture (its sequence, else its source photo), in key order."""
        if self._captures is None:
            self._captures = {}
            for j in range(len(self.index)):
                self._captures.setdefault(self._capture(j), []).append(j)
            for members in self._captures.values():
                members.sort(key=self.index.key)
        members = self._captures.get(self._capture(i), [])
        return members[:limit] if len(members) > 1 else []

    def _capture(self, i: int) -> str:
        return f"seq:{self.sequences[i]}" if self.sequences[i] else f"image:{self.sources[i]}" if self.sources[i] \
            else f"sample:{i}"

    def same_source(self, i: int) -> list[int]:
        """The split's crops of sample i's photo, sample i among them."""
        source = self.sources[i]
        return [j for j in self.same_sequence(i, 10**9) or [i] if self.sources[j] == source] if source else [i]


def frame_with_boxes(frame_path: Path, boxes: list[tuple[float, float, float, float]], highlight: int) -> bytes:
    """The photo a crop was cut from, as a thumbnail with its crops' boxes drawn (box `highlight` in red)."""
    from PIL import Image, ImageDraw, ImageOps

    with Image.open(frame_path) as opened:
        opened.draft("RGB", (FRAME_PX * 2, FRAME_PX * 2))
        image = ImageOps.exif_transpose(opened).convert("RGB")  # boxes refer to the displayed photo
    image.thumbnail((FRAME_PX, FRAME_PX))
    draw = ImageDraw.Draw(image)
    w, h = image.size
    width = max(2, w // 160)
    for j, (x, y, bw, bh) in enumerate(boxes):
        color = (220, 40, 40) if j == highlight else (255, 255, 255)
        draw.rectangle([x * w, y * h, (x + bw) * w, (y + bh) * h], outline=color, width=width)
    return _jpeg(image, 80)
