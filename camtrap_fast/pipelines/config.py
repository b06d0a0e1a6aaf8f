"""What a loader must produce: `LoaderConfig`, and the random crop and flip each training sample gets.

The crops are drawn here, in numpy, from (seed, epoch, batch) rather than
inside DALI or torchvision, so that both backends give a sample the same crop,
a run is reproducible whatever the number of workers or threads, and any
epoch can be replayed on its own (resuming, debugging one bad batch).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

MODES = ("train", "eval")
BACKENDS = ("auto", "dali", "pil")
ATTEMPTS = 10  # random-resized-crop tries before falling back to a centre crop, as in torchvision


def default_workers() -> int:
    """CPUs this process may use (affinity-aware), capped: past ~16 decode workers a GPU is usually the limit."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(16, cpus))


@dataclass(frozen=True)
class LoaderConfig:
    """How to turn an epoch order into batches; `make_loader` resolves the `auto` choices once."""

    mode: str  # "train": random resized crop + flip; "eval": resize shorter side + centre crop
    backend: str = "auto"  # auto: DALI when running on CUDA and DALI is installed, else PIL
    device: str = "auto"  # auto | cpu | cuda | cuda:N; where `inputs` and `labels` are delivered
    batch_size: int = 64
    image_size: int = 224  # output side in pixels
    resize_size: int | None = None  # eval: shorter side before the centre crop; None: image_size * 256 / 224
    crop_scale: tuple[float, float] = (0.08, 1.0)  # train: crop area as a fraction of the image
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # train: crop width / height
    drop_last: bool | None = None  # None: drop the last partial batch in train mode only
    seed: int = 0
    workers: int = field(default_factory=default_workers)  # PIL: DataLoader processes; DALI: decode threads
    skip_corrupt: bool = False  # False: a sample that cannot be read or decoded is a UserError naming it
    feed_workers: int | None = None  # DALI: processes feeding JPEG bytes; None: 2 on CUDA, 0 (main thread) on CPU
    prefetch: int = 2  # batches prepared ahead, per worker (PIL) or per pipeline (DALI)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.device not in ("auto", "cpu", "cuda") and not _is_cuda_index(self.device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("batch_size", "image_size", "prefetch"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("workers", self.workers, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        if self.feed_workers is not None:
            _check_int("feed_workers", self.feed_workers, minimum=0)
        if self.resize_size is not None:
            _check_int("resize_size", self.resize_size, minimum=1)
            if self.resize_size < self.image_size:
                raise ValueError(
                    f"resize_size {self.resize_size} is smaller than image_size {self.image_size}; "
                    "the centre crop must fit: use resize_size >= image_size (or None for the usual 256/224 ratio)"
                )
        low, high = _pair("crop_scale", self.crop_scale)
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        low, high = _pair("crop_ratio", self.crop_ratio)
        if not 0 < low <= high:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if self.drop_last is not None and not isinstance(self.drop_last, bool):
            raise ValueError(f"drop_last must be True, False or None, got {self.drop_last!r}")

    @property
    def train(self) -> bool:
        return self.mode == "train"

    @property
    def drops_last(self) -> bool:
        return self.train if self.drop_last is None else self.drop_last

    @property
    def eval_resize(self) -> int:
        """Shorter side before the eval centre crop (the usual 256 for 224)."""
        return self.resize_size if self.resize_size is not None else round(self.image_size * 256 / 224)


def _is_cuda_index(device: str) -> bool:
    head, _, index = device.partition(":")
    return head == "cuda" and index.isdigit()


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def _pair(name: str, value) -> tuple[float, float]:
    if not isinstance(value, tuple) or len(value) != 2 or not all(isinstance(v, (int, float)) for v in value):
        raise ValueError(f"{name} must be a (low, high) tuple of numbers, got {value!r}")
    return float(value[0]), float(value[1])


@dataclass(frozen=True)
class CropDraws:
    """Uniform random numbers for one batch's crops and flips, drawn before any image size is known."""

    area: np.ndarray  # (n, ATTEMPTS) in [0, 1)
    log_ratio: np.ndarray  # (n, ATTEMPTS) in [0, 1)
    top: np.ndarray  # (n,) in [0, 1)
    left: np.ndarray  # (n,) in [0, 1)
    flip: np.ndarray  # (n,) bool


def draw_crops(seed: int, epoch: int, batch: int, n: int) -> CropDraws:
    """The draws for batch `batch` of epoch `epoch`; a pure function of its arguments, so workers need no state."""
    rng = np.random.default_rng([seed, epoch, batch])
    return CropDraws(
        area=rng.random((n, ATTEMPTS)),
        log_ratio=rng.random((n, ATTEMPTS)),
        top=rng.random(n),
        left=rng.random(n),
        flip=rng.random(n) < 0.5,
    )


def crop_windows(
    draws: CropDraws, widths: np.ndarray, heights: np.ndarray, scale: tuple[float, float], ratio: tuple[float, float]
) -> np.ndarray:
    """torchvision's RandomResizedCrop.get_params, vectorized: (n, 4) int64 windows (left, top, width, height)."""
    widths = np.asarray(widths, dtype=np.float64)[:, None]
    heights = np.asarray(heights, dtype=np.float64)[:, None]
    area = widths * heights * (scale[0] + (scale[1] - scale[0]) * draws.area)
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = np.exp(log_low + (log_high - log_low) * draws.log_ratio)
    w = np.rint(np.sqrt(area * aspect))
    h = np.rint(np.sqrt(area / aspect))
    fits = (w > 0) & (w <= widths) & (h > 0) & (h <= heights)
    first = fits.argmax(axis=1)  # the first attempt that fits, as torchvision's loop takes it
    rows = np.arange(len(first))
    w, h, found = w[rows, first], h[rows, first], fits[rows, first]
    widths, heights = widths[:, 0], heights[:, 0]
    # Fallback when no attempt fits: the whole image, trimmed to the ratio bounds, centred.
    image_ratio = widths / heights
    fallback_w = np.where(image_ratio > ratio[1], np.rint(heights * ratio[1]), widths)
    fallback_h = np.where(image_ratio < ratio[0], np.rint(widths / ratio[0]), heights)
    w = np.where(found, w, fallback_w)
    h = np.where(found, h, fallback_h)
    left = np.where(found, np.floor(draws.left * (widths - w + 1)), (widths - w) // 2)
    top = np.where(found, np.floor(draws.top * (heights - h + 1)), (heights - h) // 2)
    return np.stack([left, top, w, h], axis=1).astype(np.int64)


def center_window(width: int, height: int, resize: int, size: int) -> tuple[float, float, float, float]:
    """The source box that `Resize(resize)` then `CenterCrop(size)` samples, as (left, top, right, bottom).

    Resampling this box straight to size x size reads the same source positions
    as resizing the whole image and cropping, without resampling pixels the crop
    throws away.
    """
    if width <= height:
        new_w, new_h = resize, int(resize * height / width)
    else:
        new_w, new_h = int(resize * width / height), resize
    sx, sy = new_w / width, new_h / height
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return left / sx, top / sy, (left + size) / sx, (top + size) / sy
