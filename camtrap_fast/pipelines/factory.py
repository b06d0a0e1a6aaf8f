"""`make_loader`: decide backend and device once, and the `Loader` contract both backends implement.

The base class holds what must not differ between backends: how an order is
cut into batches, the corrupt-sample policy, the JPEG header check, and the
move to the device plus normalization. A backend only turns one batch of
sample indices into a uint8 NHWC batch (`_epoch_images`) and a list of encoded
images into one (`_eval_images`).
"""

from __future__ import annotations

import abc
import importlib.util
import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from camtrap_fast.errors import UserError
from camtrap_fast.pipelines.config import LoaderConfig
from camtrap_fast.pipelines.normalize import to_inputs
from camtrap_fast.shards.manifest import Manifest
from camtrap_fast.shards.reader import ShardReader
from camtrap_fast.shards.sample_index import SampleIndex

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]  # (images or inputs, labels)

# What PIL raises for data it cannot decode (UnidentifiedImageError is an OSError).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

# One (start, stop) pair of positions in the order per batch.
Bounds = list[tuple[int, int]]


class Loader(abc.ABC):
    """Batches of one split in a given order: `epoch(order, epoch)` yields (inputs, labels) on `device`."""

    backend: str  # "dali" | "pil"

    def __init__(self, manifest: Manifest, split: str, config: LoaderConfig, device: torch.device):
        self.manifest = manifest
        self.split = split
        self.config = config
        self.device = device
        self.index: SampleIndex = manifest.load_index(split)
        self.reader = ShardReader(self.index, manifest.root)
        self.skipped = 0  # corrupt samples skipped so far (skip_corrupt=True), over all epochs
        missing = [str(manifest.root / s) for s in self.index.shards if not (manifest.root / s).is_file()]
        if missing:
            raise UserError(f"{missing[0]}: shard listed in the {split} index is missing ({len(missing)} missing)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, device={self.device}, config={self.config})"

    # --- batching -----------------------------------------------------------------------------------

    def num_batches(self, n: int) -> int:
        """Batches an order of n samples gives (the last partial one counted unless it is dropped)."""
        size = self.config.batch_size
        return n // size if self.config.drops_last else -(-n // size)

    def batches_in(self, order: np.ndarray) -> Bounds:
        """(start, stop) positions in `order` of each batch."""
        size = self.config.batch_size
        return [(start, min(start + size, len(order))) for start in range(0, self.num_batches(len(order)) * size, size)]

    def check_order(self, order) -> np.ndarray:
        order = np.asarray(order)
        if order.ndim != 1 or not (np.issubdtype(order.dtype, np.integer) or order.size == 0):
            raise ValueError(f"order must be a 1-D array of sample indices, got shape {order.shape} {order.dtype}")
        order = order.astype(np.int64, copy=False)
        if order.size and (order.min() < 0 or order.max() >= len(self.index)):
            raise ValueError(
                f"order holds indices in [{order.min()}, {order.max()}] but the {self.split} split has "
                f"{len(self.index)} samples; build the order from this split's index"
            )
        return order

    # --- the contract -------------------------------------------------------------------------------

    def epoch(self, order, epoch: int = 0) -> Iterator[Batch]:
        """(inputs, labels) per batch: float32 (N, 3, S, S) ImageNet-normalized, int64 (N,), both on `device`.

        Labels follow `order` exactly (minus skipped corrupt samples). In train
        mode crops and flips depend only on (seed, epoch, position in the order).
        """
        for images, labels in self.epoch_images(order, epoch):
            yield to_inputs(images, self.device), labels

    def epoch_images(self, order, epoch: int = 0) -> Iterator[Batch]:
        """Like `epoch`, but the uint8 (N, S, S, 3) images before normalization (benchmarks, previews)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        order = self.check_order(order)
        bounds = self.batches_in(order)
        if not bounds:
            return
        non_blocking = self.device.type == "cuda"
        for images, labels in self._epoch_images(order, int(epoch), bounds):
            yield images.to(self.device, non_blocking=non_blocking), labels.to(self.device, non_blocking=non_blocking)

    def stream(self, shard_urls: Sequence[str], plan, seed: int, epoch: int = 0,
               shuffle_buffer: int = 10_000) -> Iterator[Batch]:
        """Streaming mode, for shards behind `http(s)://`, `s3://` or `pipe:` URLs: like `epoch`, but in the
        order `sampling.streaming.stream_epoch` reads them (shards shuffled per epoch, each sample repeated as
        the plan draws it, a seeded shuffle buffer). Per-class totals equal the random-access epoch's; samples
        the plan drops are skipped in the tar stream and never decoded. `plan` must come from this split."""
        from camtrap_fast.sampling.streaming import stream_epoch

        samples = stream_epoch(list(shard_urls), self.index, plan, seed, epoch, shuffle_buffer)
        non_blocking = self.device.type == "cuda"
        for images, labels in self._stream_images(samples, int(epoch)):
            yield to_inputs(images.to(self.device, non_blocking=non_blocking), self.device), \
                labels.to(self.device, non_blocking=non_blocking)

    def _stream_images(self, samples, epoch: int) -> Iterator[Batch]:
        raise UserError(f"streaming shards needs the PIL backend (this loader uses {self.backend})")

    def transform_bytes(self, encoded: Sequence[bytes]) -> torch.Tensor:
        """The eval transform applied to encoded images (JPEG bytes): normalized inputs on `device`, one per image.

        Unlike an epoch, nothing is skipped: an image that cannot be decoded is a
        UserError naming its position, so outputs always line up with inputs.
        """
        if len(encoded) == 0:
            size = self.config.image_size
            return torch.empty((0, 3, size, size), dtype=torch.float32, device=self.device)
        return to_inputs(self._eval_images(list(encoded)), self.device)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abc.abstractmethod
    def _epoch_images(self, order: np.ndarray, epoch: int, bounds: Bounds) -> Iterator[Batch]:
        """uint8 NHWC images and int64 labels per batch; calls `_corrupt` for each bad sample it leaves out."""

    @abc.abstractmethod
    def _eval_images(self, encoded: list[bytes]) -> torch.Tensor:
        """uint8 NHWC eval-transformed images, one per input, on any device."""

    # --- corrupt samples ----------------------------------------------------------------------------

    def _corrupt(self, message: str) -> None:
        """The one error policy: raise, or (skip_corrupt) count, log and go on."""
        if not self.config.skip_corrupt:
            raise UserError(f"{message} (pass skip_corrupt / --skip-corrupt to skip such samples)")
        self.skipped += 1
        log.warning("skipping corrupt sample: %s", message)


def sample_message(index: SampleIndex, root, i: int, problem: str) -> str:
    """'SHARD: sample 'KEY' PROBLEM', the form every sample error takes."""
    return f"{root / index.shards[int(index.shard_ids[i])]}: sample '{index.key(int(i))}' {problem}"


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG header, after a structural check that catches cut-off and overwritten files.

    Walks the marker segments up to the start of scan and requires the
    end-of-image marker (trailing zero padding allowed). It does not decode:
    damage inside the compressed data can still pass, as in any decoder.
    Raises ValueError saying what is wrong.
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise ValueError("is not a JPEG (no start-of-image marker)")
    end = n
    while end > 2 and data[end - 1] == 0:
        end -= 1
    if data[end - 2 : end] != b"\xff\xd9":
        raise ValueError("has no end-of-image marker (cut off or overwritten)")
    size = None
    i = 2
    while i + 4 <= end:
        if data[i] != 0xFF:
            raise ValueError(f"has a damaged header (no marker at byte {i})")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers carry no length
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2 or i + 2 + length > end:
            raise ValueError(f"has a damaged header (segment at byte {i} runs past the end)")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            if width == 0 or height == 0:
                raise ValueError(f"has a damaged header (frame size {width}x{height})")
            size = (width, height)
        elif marker == 0xDA:  # start of scan: the compressed data follows
            if size is None:
                raise ValueError("has a damaged header (scan before frame header)")
            return size
        i += 2 + length
    raise ValueError("has a damaged header (no start of scan)")


# --- the one place where backend and device are decided -----------------------------------------------


def dali_available() -> bool:
    """Whether DALI is installed, without importing it (that takes seconds)."""
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except ModuleNotFoundError:
        return False


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device}: no CUDA device is available here; use device cpu (or auto)")
    return torch.device(device)


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        # DALI's win is decoding on the GPU; on CPU alone the PIL workers are faster (see bench/README_loader.md).
        return "dali" if device.type == "cuda" and dali_available() else "pil"
    if backend == "dali" and not dali_available():
        raise UserError("backend dali: NVIDIA DALI is not installed (pip install nvidia-dali-cuda130); use backend pil")
    return backend


def make_loader(manifest: Manifest, split: str, config: LoaderConfig) -> Loader:
    """A loader for `split` of a shard directory, with backend and device resolved from `config`."""
    device = resolve_device(config.device)
    backend = resolve_backend(config.backend, device)
    if config.mode == "eval" and config.eval_resize > manifest.image_size:
        log.warning(
            "eval resize %d px is larger than the shards' %d px: images will be upsampled; "
            "re-shard with --size %d for sharper eval inputs",
            config.eval_resize,
            manifest.image_size,
            config.eval_resize,
        )
    if backend == "dali":
        from camtrap_fast.pipelines.dali_backend import DaliLoader

        return DaliLoader(manifest, split, config, device)
    from camtrap_fast.pipelines.pil_backend import PilLoader

    return PilLoader(manifest, split, config, device)
