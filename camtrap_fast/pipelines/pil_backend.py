"""PIL (pillow-simd) backend: persistent DataLoader workers that each build one whole uint8 batch.

A worker receives a batch's sample indices (never the whole order), reads the
JPEGs with one pread each, decodes with libjpeg-turbo through PIL and resamples
only the crop box straight to the output size with pillow-simd's bilinear
filter (antialiased, as torchvision's). When the box is at least twice the
output size, `Image.draft` lets libjpeg decode at 1/2, 1/4 or 1/8 scale first
(DCT scaling), which skips most of the decode work for large images. Workers
return uint8; floats are made on the device (`normalize.to_inputs`). Corrupt
samples travel back as messages, not exceptions, so the main process applies
the one error policy and a worker never dies mid-epoch.

Workers write their batches straight into a ring of batch buffers in shared memory, made once per loader
(`_Ring`), and send back only the slot number: a batch in fresh shared memory per request cost page faults
in both processes (~0.25 ms of CPU per 224-px image on the dev VM, a quarter of the whole transform;
bench/README.md, loader). A slot is reused only after the DataLoader has handed out every batch requested
before it and the one after it, so the batch a caller holds stays intact until it asks for the next.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset, Sampler

from camtrap_fast.errors import CamtrapError, UserError
from camtrap_fast.pipelines.config import LoaderConfig
from camtrap_fast.pipelines.crop_geometry import crop_windows, draw_crops, eval_window
from camtrap_fast.pipelines.jpeg_header import jpeg_size
from camtrap_fast.pipelines.loader import DECODE_ERRORS, Batch, Bounds, Loader, sample_message
from camtrap_fast.pipelines.normalize import to_inputs
from camtrap_fast.processes import die_with_parent
from camtrap_fast.shards.manifest import Manifest
from camtrap_fast.shards.reader import ShardReader

ORIENTATION = 0x0112  # the EXIF tag
Box = tuple[float, float, float, float]  # (left, top, right, bottom) in source pixels


class PilLoader(Loader):
    backend = "pil"

    def __init__(self, manifest: Manifest, split: str, config: LoaderConfig, device: torch.device):
        super().__init__(manifest, split, config, device)
        workers = config.workers
        self._ring = _Ring(config, in_flight=config.prefetch * workers if workers else 1)
        self._requests = _Requests(self._ring.slots)
        # One DataLoader for the loader's life, with persistent workers: an epoch costs no process start-up
        # (eval loaders run every epoch), and each worker gets only its batch's sample indices, not the order.
        self._batches = DataLoader(
            _BatchBuilder(self.reader, config, self._ring),
            batch_size=None,  # each request already is a batch
            sampler=self._requests,
            num_workers=workers,
            # No pinning: the images are in the ring, not in what the DataLoader returns; a copy to CUDA from
            # the (pageable) ring has read the slot by the time it returns, so the slot can be reused.
            pin_memory=False,
            prefetch_factor=config.prefetch if workers else None,
            persistent_workers=workers > 0,
            worker_init_fn=functools.partial(_start_worker, config.worker_nice),
        )

    def close(self) -> None:
        self._batches = None  # drops the persistent workers
        super().close()

    def _batch(self, built) -> Batch:
        slot, count, labels, problems = built
        return self._ring.batch(slot, count), labels, problems

    def _epoch_images(self, order: np.ndarray, epoch: int, bounds: Bounds) -> Iterator[Batch]:
        self._ring.buffer  # noqa: B018  (before the workers start: see _Ring.buffer)
        self._requests.batches = [(epoch, b, order[start:stop]) for b, (start, stop) in enumerate(bounds)]
        # The DataLoader first: it must run to its end (StopIteration) for its persistent workers' next epoch.
        for (images, labels, problems), (start, _) in zip(map(self._batch, self._batches), bounds):
            for k, message in problems:
                self._corrupt(message, start + k)
            if len(labels):
                yield images, labels

    def _stream_images(self, samples, epoch: int) -> Iterator[Batch]:
        size, drop_last = self.config.batch_size, self.config.drops_last

        def requests():
            batch, b = [], 0
            for sample in samples:  # read in this process, in stream order; decoded in the workers
                batch.append(sample)
                if len(batch) == size:
                    yield epoch, b, batch
                    batch, b = [], b + 1
            if batch and not drop_last:
                yield epoch, b, batch

        self._ring.buffer  # noqa: B018  (before the workers start: see _Ring.buffer)
        self._requests.batches = requests()
        for images, labels, problems in map(self._batch, self._batches):
            for _, message in problems:
                self._corrupt(message)
            if len(labels):
                yield images, labels


def _start_worker(nice: int, *_args) -> None:
    die_with_parent()  # a killed train leaves no worker behind
    if nice:
        os.nice(nice)


# (epoch, batch number, sample indices) for random access, or (epoch, batch number, [(key, bytes, label)])
# when streaming; then the ring slot to build it in (None: a fresh array, for in-process use).
Request = tuple[int, int, object] | tuple[int, int, object, int | None]


class _Ring:
    """Batch buffers in shared memory, one per slot: enough that a slot comes round again only after every batch
    requested before it has been handed out, plus the one the caller holds and the one it is receiving."""

    def __init__(self, config: LoaderConfig, in_flight: int):
        self.slots = in_flight + 2
        self.config = config
        self._buffer: torch.Tensor | None = None  # made on first use: a loader that never runs costs no memory

    @property
    def buffer(self) -> torch.Tensor:
        """Made in the main process before the workers start (`PilLoader` asks for it before its first epoch),
        so that workers forked or spawned afterwards write where the caller reads."""
        if self._buffer is None:
            size = self.config.image_size
            self._buffer = torch.empty((self.slots, self.config.batch_size, size, size, 3), dtype=torch.uint8)
            if self.config.workers:
                self._buffer.share_memory_()
        return self._buffer

    def batch(self, slot: int, count: int) -> torch.Tensor:
        return self.buffer[slot, :count]


class _Requests(Sampler):
    """The current epoch's batch requests, each given the next ring slot; the DataLoader iterates it afresh each
    epoch, in the main process, and only as fast as it hands batches out (prefetch_factor per worker ahead)."""

    def __init__(self, slots: int):
        self.batches = []  # a list (random access) or a generator (streaming)
        self.slots = slots
        self._count = 0  # counts on across epochs: a new epoch's first batches never land in the slot still held

    def __iter__(self):
        for request in self.batches:
            slot, self._count = self._count % self.slots, self._count + 1
            yield (*request, slot)


class _BatchBuilder(Dataset):
    """One batch, built in a worker into its ring slot: (slot, images kept, int64 labels, (position in the batch,
    message) for each corrupt sample left out). Without a slot (in-process use) the images themselves come
    back instead of the slot."""

    def __init__(self, reader: ShardReader, config: LoaderConfig, ring: _Ring | None = None):
        self.reader = reader
        self.config = config
        self.ring = ring

    def __getitem__(self, request: Request):
        epoch, b, samples, *rest = request
        slot = rest[0] if rest else None
        index, config, size = self.reader.index, self.config, self.config.image_size
        problems: list[tuple[int, str]] = []
        jpegs: dict[int, bytes] = {}
        if isinstance(samples, np.ndarray):  # random access: sample indices, read here with one pread each
            labels_in = index.labels[samples].astype(np.int64)
            encoded = []
            for i in samples.tolist():
                try:
                    encoded.append(self.reader.read(i))
                except CamtrapError as error:  # damaged (CRC-32, cut off) or unreadable: names shard and key
                    encoded.append(error)
            names = [lambda problem, i=i: sample_message(index, self.reader.root, i, problem) for i in samples.tolist()]
        else:  # streaming: (key, bytes, label) triples already read from the stream
            labels_in = np.array([label for _, _, label in samples], dtype=np.int64)
            encoded = [data for _, data, _ in samples]
            names = [lambda problem, key=key: f"streamed sample '{key}': {problem}" for key, _, _ in samples]
        sizes = np.ones((len(encoded), 2), dtype=np.int64)
        for k, data in enumerate(encoded):
            if isinstance(data, CamtrapError):
                problems.append((k, str(data)))
                continue
            try:
                sizes[k] = jpeg_size(data)
                jpegs[k] = data
            except ValueError as error:
                problems.append((k, names[k](str(error))))
        if config.train:
            draws = draw_crops(config.seed, epoch, b, len(encoded))
            windows = crop_windows(draws, sizes[:, 0], sizes[:, 1], config.crop_scale, config.crop_ratio)
        if slot is None:
            images = np.empty((len(jpegs), size, size, 3), dtype=np.uint8)
        else:  # decoded straight into the batch the caller will read
            images = self.ring.buffer[slot].numpy()
        kept = []
        for k, data in jpegs.items():
            try:
                if config.train:
                    left, top, w, h = windows[k].tolist()
                    image = decode_box(data, (left, top, left + w, top + h), size)
                    if draws.flip[k]:
                        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # ~10x faster than a numpy flip (bench/README.md)
                    images[len(kept)] = np.asarray(image)
                else:
                    images[len(kept)] = eval_image(data, config)
                kept.append(k)
            except DECODE_ERRORS as error:
                problems.append((k, names[k](f"cannot be decoded ({error})")))
        labels = labels_in[kept]
        if slot is None:
            return images[: len(kept)], labels, problems
        return slot, len(kept), labels, problems


def decode_box(data: bytes, box: Box, size: int) -> Image.Image:
    """Decode a JPEG and resample `box` to size x size (RGB), decoding at reduced scale when the box allows."""
    image = Image.open(io.BytesIO(data))
    box = _draft(image, box, size)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image.resize((size, size), Image.Resampling.BILINEAR, box=box)


def eval_inputs(encoded: Sequence[bytes], config: LoaderConfig, device: torch.device) -> torch.Tensor:
    """The eval loaders' transform for encoded images that are not in a shard (predict): normalized inputs on
    `device`, one per image. Nothing is skipped: an image that cannot be decoded is a UserError naming its
    position, so outputs always line up with inputs."""
    if len(encoded) == 0:
        return torch.empty((0, 3, config.image_size, config.image_size), dtype=torch.float32, device=device)

    def one(item: tuple[int, bytes]) -> np.ndarray:
        position, data = item
        try:
            return eval_image(data, config)
        except DECODE_ERRORS as error:
            raise UserError(f"image {position} of {len(encoded)} cannot be decoded ({error})") from None

    # PIL releases the GIL while decoding and resampling, so threads scale here without worker processes.
    with ThreadPoolExecutor(max(1, min(config.workers, len(encoded)))) as pool:
        images = torch.from_numpy(np.stack(list(pool.map(one, enumerate(encoded)))))
    return to_inputs(images, device)


def eval_image(data: bytes, config: LoaderConfig) -> np.ndarray:
    """The eval transform for any encoded image (EXIF orientation applied, as DALI's decoder does)."""
    size, resize = config.image_size, config.eval_resize
    if config.eval_crop == "full":
        resize = size  # the whole frame is resampled: its shorter side may drop to `size`
    image = Image.open(io.BytesIO(data))
    # Draft so the shorter side stays >= resize; that side is the same before and after an EXIF rotation.
    _draft(image, (0, 0, *image.size), resize)
    if image.getexif().get(ORIENTATION, 1) != 1:  # exif_transpose would copy the image even when upright
        image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    box = eval_window(*image.size, config.eval_crop, resize, size)
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=box))


def _draft(image: Image.Image, box: Box, size: int) -> Box:
    """Ask libjpeg for DCT-scaled decoding that keeps the box >= `size`; returns the box in the new pixels."""
    left, top, right, bottom = box
    if size <= 0 or image.format != "JPEG" or min(right - left, bottom - top) < 2 * size:
        return box
    width, height = image.size
    reduction = min(right - left, bottom - top) / size  # >= 2: the box may shrink by this much
    image.draft("RGB", (math.ceil(width / reduction), math.ceil(height / reduction)))
    sx, sy = image.size[0] / width, image.size[1] / height
    return left * sx, top * sy, right * sx, bottom * sy
