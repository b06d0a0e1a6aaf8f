"""The `Loader` contract both backends implement, and the batch types they exchange.

The base class holds what must not differ between backends: how an order is
cut into batches, the corrupt-sample policy, and the move to the device plus
normalization. A backend only turns one batch of sample indices into a uint8
NHWC batch (`_epoch_images`), and, for streaming, a batch of samples already
read (`_stream_images`).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from camtrap_fast.errors import Fault, UserError
from camtrap_fast.pipelines.config import LoaderConfig
from camtrap_fast.pipelines.normalize import conversion_threads, to_inputs
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
        # The distinct samples behind `skipped` (index in the split, or the message where streaming gives none): what
        # a report counts, since one damaged sample is met again every epoch.
        self.skipped_samples: set[int | str] = set()
        self._order = np.empty(0, dtype=np.int64)  # the current epoch's, for `_corrupt` to name the sample
        # Positions in the current epoch's order of the samples skipped, so callers can line results up with
        # the order (an eval report's keys) rather than assume every sample came through.
        self.skipped_positions: list[int] = []
        # The float conversion runs in this process while config.workers decode the next batches (DALI: its
        # decode threads; PIL: worker processes, or none, decoding here between conversions).
        self.conversion_threads = conversion_threads(config.workers)
        missing = [str(manifest.root / s) for s in self.index.shards if not (manifest.root / s).is_file()]
        if missing:
            raise Fault(f"{missing[0]}: shard listed in the {split} index is missing ({len(missing)} missing); "
                        f"run `camtrap-fast verify {manifest.root}`")

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
            yield to_inputs(images, self.device, self.conversion_threads), labels

    def epoch_images(self, order, epoch: int = 0) -> Iterator[Batch]:
        """Like `epoch`, but the uint8 (N, S, S, 3) images before normalization (benchmarks, previews).

        A batch may be a view of a buffer the loader reuses (the PIL backend's ring): it stays intact until
        the next batch is asked for; copy it to keep it longer."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        order = self.check_order(order)
        self._order = order
        self.skipped_positions = []
        bounds = self.batches_in(order)
        if not bounds:
            return
        non_blocking = self.device.type == "cuda"
        for images, labels in self._epoch_images(order, int(epoch), bounds):
            yield images.to(self.device, non_blocking=non_blocking), labels.to(self.device, non_blocking=non_blocking)

    def stream(self, shard_urls: Sequence[str], plan, seed: int, epoch: int = 0,
               shuffle_buffer: int = 10_000) -> Iterator[Batch]:
        """Streaming mode, for shards behind `http(s)://`, `s3://` or `pipe:` URLs: like `epoch`, but in the
        order `pipelines.streaming.stream_epoch` reads them (shards shuffled per epoch, each sample repeated as
        the plan draws it, a seeded shuffle buffer). Per-class totals equal the random-access epoch's; samples
        the plan drops are skipped in the tar stream and never decoded. `plan` must come from this split."""
        from camtrap_fast.pipelines.streaming import stream_epoch

        samples = stream_epoch(list(shard_urls), self.index, plan, seed, epoch, shuffle_buffer,
                               on_damaged=self._corrupt)  # a CRC-32 mismatch is one more corrupt sample
        non_blocking = self.device.type == "cuda"
        for images, labels in self._stream_images(samples, int(epoch)):
            images = images.to(self.device, non_blocking=non_blocking)
            labels = labels.to(self.device, non_blocking=non_blocking)
            yield to_inputs(images, self.device, self.conversion_threads), labels

    def _stream_images(self, samples, epoch: int) -> Iterator[Batch]:
        raise UserError(f"streaming shards needs the PIL backend (this loader uses {self.backend})")

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abc.abstractmethod
    def _epoch_images(self, order: np.ndarray, epoch: int, bounds: Bounds) -> Iterator[Batch]:
        """uint8 NHWC images and int64 labels per batch; calls `_corrupt` (with its position in `order`) for each
        bad sample it leaves out."""

    # --- corrupt samples ----------------------------------------------------------------------------

    def _corrupt(self, message: str, position: int | None = None) -> None:
        """The one error policy: raise, or (skip_corrupt) count, log and go on. `position`: in the epoch's order."""
        if not self.config.skip_corrupt:
            raise Fault(f"{message} (pass --skip-corrupt to skip and count such samples)")
        self.skipped += 1
        if position is not None:
            self.skipped_positions.append(int(position))
        self.skipped_samples.add(message if position is None else int(self._order[position]))
        log.warning("skipping corrupt sample: %s", message)


def sample_message(index: SampleIndex, root, i: int, problem: str) -> str:
    """'SHARD: sample 'KEY' PROBLEM', the form every sample error takes."""
    return f"{root / index.shards[int(index.shard_ids[i])]}: sample '{index.key(int(i))}' {problem}"
