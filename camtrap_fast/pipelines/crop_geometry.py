"""Crop geometry: the random resized crop and flip each training sample gets, and the eval centre-crop box.

The crops are drawn here, in numpy, from (seed, epoch, batch) rather than
inside DALI or torchvision, so that both backends give a sample the same crop,
a run is reproducible whatever the number of workers or threads, and any
epoch can be replayed on its own (resuming, debugging one bad batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ATTEMPTS = 10  # random-resized-crop tries before falling back to a centre crop, as in torchvision


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


EVAL_CROPS = ("center", "full")


def eval_window(width: int, height: int, eval_crop: str, resize: int, size: int) -> tuple[float, float, float, float]:
    """The source box an eval input samples: the centre crop (`center`: the usual Resize + CenterCrop), or the
    whole frame squeezed to the square (`full`, as SpeciesNet and MEWC classify whole frames: nothing at the
    edges of a wide frame is cut away, at the cost of the animals' aspect ratio)."""
    if eval_crop == "full":
        return 0.0, 0.0, float(width), float(height)
    return center_window(width, height, resize, size)
