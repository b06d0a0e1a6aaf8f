"""NVIDIA DALI backend: JPEG bytes in epoch order -> fused decode (+ crop) -> resize -> flip, on GPU or CPU.

`fn.external_source` is fed by `_Feed`, which reads each batch's JPEGs with one
pread per sample (`ShardReader`), checks their headers and computes the train
crop windows (`config.crop_windows`, the same windows the PIL backend uses).
Train decodes only the window (`fn.decoders.image_slice`: DALI's fused
region-of-interest decode, as in `image_random_crop` but with our seeded
windows), then resizes to the output size and flips. Eval decodes and resamples
the centre-crop box straight to the output size (`fn.resize` with a float ROI):
the same source positions as "resize the shorter side, then centre-crop", but
with torchvision's rounding of the crop offset, which `fn.resize(resize_shorter)`
+ `fn.crop` would shift by a pixel. The decoder runs where the device is:
`decoder_device = "cpu" if cpu else "mixed"` (nvJPEG on the GPU). DALI emits
uint8 NHWC; `normalize.to_inputs` makes the floats on the device, the same code
for both backends.

The feed is a plain picklable callable of (epoch_idx, iteration), so DALI can
run it in worker processes (`feed_workers`). Its per-epoch state (the order)
reaches those processes through a small file per DALI epoch, written before the
epoch starts, because the callable itself is pickled only once. Parallel feeds
need full batches, so every batch is padded to batch_size with a tiny
placeholder JPEG and comes back with a status per sample (ok / pad / corrupt),
which the main process uses to trim the batch and to apply the error policy. On
CPU the feed (a pread and a header walk per sample) costs a few percent of the
decode and runs in the main thread; worker processes there would only compete
with DALI's decode threads for cores. On CUDA the feed runs in 2 processes,
started with `spawn`: forking a process that holds a CUDA context is unsafe.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from camtrap_fast.atomic import open_atomic
from camtrap_fast.errors import CamtrapError, Fault
from camtrap_fast.pipelines.config import LoaderConfig
from camtrap_fast.pipelines.crop_geometry import crop_windows, draw_crops, eval_window
from camtrap_fast.pipelines.jpeg_header import jpeg_size
from camtrap_fast.pipelines.loader import Batch, Bounds, Loader, sample_message
from camtrap_fast.shards.manifest import Manifest
from camtrap_fast.shards.reader import ShardReader

log = logging.getLogger(__name__)

OK, PAD, CORRUPT, EXCLUDED = 0, 1, 2, 3  # per-sample status from the feed; EXCLUDED: already reported
FEED_WORKERS_CUDA = 2  # one feed process prepares ~50k samples/s (1.2 ms CPU per batch of 64); two keep up with a GPU
PLACEHOLDER_SIZE = 16
_SAMPLE_IN_ERROR = re.compile(r"sample #(\d+)")


class DaliLoader(Loader):
    backend = "dali"

    def __init__(self, manifest: Manifest, split: str, config: LoaderConfig, device: torch.device):
        super().__init__(manifest, split, config, device)
        self.cpu = device.type != "cuda"
        self.feed_workers = config.feed_workers
        if self.feed_workers is None:
            self.feed_workers = 0 if self.cpu else FEED_WORKERS_CUDA
        self._placeholder = _placeholder_jpeg()
        self._state_dir = Path(tempfile.mkdtemp(prefix="camtrap-dali-feed-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._state_dir, ignore_errors=True)
        self._pipe = None  # built on first use; dropped (and rebuilt) when an epoch does not finish
        self._dali_epoch = 0  # DALI's own epoch counter for self._pipe, which names the feed's state file

    def close(self) -> None:
        self._pipe = None
        self._finalizer()
        super().close()

    # --- epochs -------------------------------------------------------------------------------------

    def _epoch_images(self, order: np.ndarray, epoch: int, bounds: Bounds) -> Iterator[Batch]:
        excluded: set[int] = set()  # positions DALI failed to decode, skipped when the epoch is resumed
        first = 0
        while first < len(bounds):
            pipe = self._start(order, epoch, first, len(bounds), excluded)
            finished = False
            try:
                for b in range(first, len(bounds)):
                    try:
                        outputs = pipe.run()
                    except RuntimeError as error:  # DALI rejected a sample that passed the header check
                        self._pipe = pipe = None  # DALI pipelines are unusable after an error
                        excluded.update(self._decode_failure(error, order, bounds[b]))
                        first = b
                        break
                    batch = self._select(outputs, order)
                    if len(batch[1]):
                        yield batch
                else:
                    finished = True
                    return
            finally:
                if not finished and pipe is not None:
                    self._pipe = None  # stopped mid-epoch: prefetched batches are stale, start afresh next time

    def _start(self, order: np.ndarray, epoch: int, first: int, num_batches: int, excluded: set[int]):
        """The pipeline, positioned at batch `first` of this epoch."""
        if self._pipe is not None:
            self._dali_epoch += 1
        else:
            self._dali_epoch = 0
            for old in self._state_dir.glob("*.npz"):
                old.unlink()
        _save_state(self._state_dir, self._dali_epoch, order, epoch, first, num_batches, excluded)
        if self._pipe is None:
            self._pipe = self._build()
        else:
            self._pipe.reset()
        (self._state_dir / f"epoch-{self._dali_epoch - 1}.npz").unlink(missing_ok=True)
        return self._pipe

    def _select(self, outputs, order: np.ndarray) -> Batch:
        """Trim pads and corrupt samples from a padded DALI batch; apply the error policy to the corrupt ones."""
        images, labels, status, positions = outputs
        status = np.asarray(status.as_array()).reshape(-1)
        labels = torch.from_numpy(np.asarray(labels.as_array()).reshape(-1))
        images = self._to_torch(images)
        for position in np.asarray(positions.as_array()).reshape(-1)[status == CORRUPT].tolist():
            self._corrupt(self._problem(int(order[position])), position)
        keep = status == OK
        if not keep.all():
            images, labels = images[torch.from_numpy(keep).to(images.device)], labels[torch.from_numpy(keep)]
        return images, labels

    def _to_torch(self, tensor_list) -> torch.Tensor:
        if self.cpu:
            return torch.from_numpy(tensor_list.as_array())  # as_array copies out of DALI's reusable buffers
        from nvidia.dali.plugin.pytorch import feed_ndarray

        dense = tensor_list.as_tensor()
        out = torch.empty(dense.shape(), dtype=torch.uint8, device=self.device)
        feed_ndarray(dense, out, cuda_stream=torch.cuda.current_stream(self.device))
        return out

    def _problem(self, i: int) -> str:
        """Why sample i was flagged corrupt by the feed, recomputed here because the feed sends only a status."""
        try:
            jpeg_size(self.reader.read(i))
        except CamtrapError as error:  # damaged (CRC-32, cut off) or unreadable: the message names shard and key
            return str(error)
        except ValueError as error:
            return sample_message(self.index, self.reader.root, i, str(error))
        return sample_message(self.index, self.reader.root, i, "cannot be decoded")

    def _decodes(self, i: int) -> bool:
        try:
            data = self.reader.read(i)
        except CamtrapError:  # the feed flagged it already (a placeholder went to DALI), so it is not the culprit
            return True
        return _pil_decodes(data)

    def _decode_failure(self, error: RuntimeError, order: np.ndarray, bound: tuple[int, int]) -> list[int]:
        """Positions of the samples DALI failed on in this batch, each reported through the error policy."""
        start, stop = bound
        detail = next((line.strip() for line in str(error).splitlines() if _SAMPLE_IN_ERROR.search(line)), "")
        match = _SAMPLE_IN_ERROR.search(detail)
        if match and start + int(match.group(1)) < stop:
            culprits = [start + int(match.group(1))]
        else:  # DALI did not say which sample: find it with PIL, which reads the same libjpeg errors
            culprits = [p for p in range(start, stop) if not self._decodes(int(order[p]))]
        if not culprits:
            first, last = int(order[start]), int(order[stop - 1])
            shard = self.reader.root / self.index.shards[int(self.index.shard_ids[first])]
            raise Fault(
                f"{shard}: DALI failed on the batch of samples '{self.index.key(first)}' to '{self.index.key(last)}' "
                f"and PIL decodes them all, so no single sample can be blamed ({detail or str(error)[:200]})"
            )
        for position in culprits:
            i = int(order[position])
            self._corrupt(sample_message(self.index, self.reader.root, i, f"cannot be decoded (DALI: {detail})"),
                          position)
        return culprits

    # --- pipelines ----------------------------------------------------------------------------------

    def _dali_device(self) -> dict:
        if self.cpu:
            return {"device_id": None}
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        return {"device_id": index}

    def _build(self):
        from nvidia.dali import fn, types
        from nvidia.dali.pipeline import Pipeline

        config, size = self.config, self.config.image_size
        decoder_device = "cpu" if self.cpu else "mixed"
        parallel = self.feed_workers > 0
        pipe = Pipeline(
            batch_size=config.batch_size,
            num_threads=max(1, config.workers),
            prefetch_queue_depth=config.prefetch,
            py_num_workers=self.feed_workers,
            # fork is unsafe once this process holds a CUDA context (torch on CUDA, or DALI itself).
            py_start_method="fork" if self.cpu and not torch.cuda.is_initialized() else "spawn",
            **self._dali_device(),
        )
        feed = _Feed(self.reader, config, str(self._state_dir), self._placeholder)
        # jpegs, labels, status, positions, then train: window anchors (x, y), window sizes (w, h), flips;
        # eval: ROI starts (y, x), ROI ends (y, x).
        dtypes = [types.UINT8, types.INT64, types.INT32, types.INT64, types.FLOAT, types.FLOAT]
        if config.train:
            dtypes.append(types.INT32)
        with pipe:
            jpegs, labels, status, positions, *geometry = fn.external_source(
                source=feed,
                num_outputs=len(dtypes),
                batch=True,
                batch_info=True,
                dtype=dtypes,
                **({"parallel": True, "prefetch_queue_depth": config.prefetch} if parallel else {}),
            )
            if config.train:
                anchors, shapes, flips = geometry
                images = fn.decoders.image_slice(
                    jpegs,
                    anchors,
                    shapes,
                    device=decoder_device,
                    output_type=types.RGB,
                    axis_names="WH",
                    normalized_anchor=False,
                    normalized_shape=False,
                )
                images = fn.resize(images, size=[size, size], interp_type=types.INTERP_LINEAR, antialias=True)
                images = fn.flip(images, horizontal=flips)
            else:
                images = _eval_graph(fn, types, jpegs, *geometry, decoder_device, size)
            pipe.set_outputs(images, labels, status, positions)
        pipe.build()
        return pipe


def _eval_graph(fn, types, jpegs, starts, ends, decoder_device: str, size: int):
    images = fn.decoders.image(jpegs, device=decoder_device, output_type=types.RGB)
    return fn.resize(
        images,
        size=[size, size],
        roi_start=starts,
        roi_end=ends,
        roi_relative=False,
        interp_type=types.INTERP_LINEAR,
        antialias=True,
    )


class _Feed:
    """external_source callable: padded batch `info.iteration` of the epoch whose state file is `info.epoch_idx`.

    Stateless apart from a cache of that file, so DALI may run it in any process, in any order.
    """

    def __init__(self, reader: ShardReader, config: LoaderConfig, state_dir: str, placeholder: bytes):
        self.reader = reader
        self.config = config
        self.state_dir = state_dir
        self.placeholder = np.frombuffer(placeholder, dtype=np.uint8)
        self._cached: tuple[int, dict] | None = None

    def _state(self, dali_epoch: int) -> dict:
        if self._cached is None or self._cached[0] != dali_epoch:
            with np.load(Path(self.state_dir) / f"epoch-{dali_epoch}.npz") as data:
                state = {name: data[name] for name in data.files}
            state["excluded"] = set(state["excluded"].tolist())
            self._cached = (dali_epoch, state)
        return self._cached[1]

    def __call__(self, info):
        state = self._state(info.epoch_idx)
        b = int(state["first"]) + info.iteration
        if b >= int(state["num_batches"]):
            raise StopIteration
        config, order, index = self.config, state["order"], self.reader.index
        size = config.batch_size
        start, stop = b * size, min((b + 1) * size, len(order))
        jpegs = [self.placeholder] * size
        status = np.full(size, PAD, dtype=np.int32)
        positions = np.full(size, -1, dtype=np.int64)
        labels = np.zeros(size, dtype=np.int64)
        sizes = np.full((size, 2), PLACEHOLDER_SIZE, dtype=np.int64)
        for k, position in enumerate(range(start, stop)):
            i = int(order[position])
            positions[k], labels[k] = position, index.labels[i]
            if position in state["excluded"]:
                status[k] = EXCLUDED
                continue
            try:
                data = self.reader.read(i)
                sizes[k] = jpeg_size(data)
            except (CamtrapError, ValueError):  # reported with its reason by the main process
                status[k] = CORRUPT
                continue
            jpegs[k], status[k] = np.frombuffer(data, dtype=np.uint8), OK
        outputs = (jpegs, labels, status, positions)
        if not config.train:
            # (y, x) ROI corners for fn.resize; pads keep the whole placeholder.
            boxes = np.tile(np.float32([0, 0, PLACEHOLDER_SIZE, PLACEHOLDER_SIZE]), (size, 1))
            for k in np.flatnonzero(status == OK).tolist():
                boxes[k] = eval_window(*sizes[k].tolist(), config.eval_crop, config.eval_resize, config.image_size)
            return (*outputs, np.ascontiguousarray(boxes[:, [1, 0]]), np.ascontiguousarray(boxes[:, [3, 2]]))
        n = stop - start  # draw for the real samples only: the same draws as the PIL backend
        draws = draw_crops(config.seed, int(state["epoch"]), b, n)
        windows = np.zeros((size, 4), dtype=np.int64)
        windows[:, 2:] = PLACEHOLDER_SIZE
        flips = np.zeros(size, dtype=np.int32)
        usable = status[:n] == OK
        real = crop_windows(draws, sizes[:n, 0], sizes[:n, 1], config.crop_scale, config.crop_ratio)
        windows[:n][usable] = real[usable]
        flips[:n] = draws.flip & usable
        windows = windows.astype(np.float32)
        return (*outputs, np.ascontiguousarray(windows[:, :2]), np.ascontiguousarray(windows[:, 2:]), flips)


def _save_state(state_dir: Path, dali_epoch: int, order, epoch, first, num_batches, excluded) -> None:
    with open_atomic(state_dir / f"epoch-{dali_epoch}.npz") as f:  # a feed process never sees half a file
        np.savez(
            f,
            order=order,
            epoch=np.int64(epoch),
            first=np.int64(first),
            num_batches=np.int64(num_batches),
            excluded=np.array(sorted(excluded), dtype=np.int64),
        )


def _pil_decodes(data: bytes) -> bool:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except Exception:  # any failure means "this is the sample": the caller reports it, nothing is swallowed
        return False


def _placeholder_jpeg() -> bytes:
    """A tiny grey JPEG that fills pad slots; its output rows are always trimmed."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), (128, 128, 128)).save(buffer, "JPEG", quality=50)
    return buffer.getvalue()
