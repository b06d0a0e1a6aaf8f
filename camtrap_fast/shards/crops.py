"""The crop rule: a detector or annotation box -> a pixel window of the photo -> one resized crop.

Training (`shard --detections`, `--crops annotations`) and prediction on detector output must
cut the same crops, so both call `encode_crops` (or `crop_window` for the geometry alone).

The rule, for a box given as normalized [x_min, y_min, width, height] in the displayed frame
(EXIF orientation applied, which is what MegaDetector boxes and human boxes refer to):

1. clip the box to the frame (detector boxes may poke out by a rounding error);
2. grow it by `padding` times its width on the left and on the right, and times its height at
   the top and at the bottom (0.1 by default: tight MegaDetector boxes clip ears, tails and
   antlers, and a little background helps the classifier as it helps a human);
3. make it a square whose side is the larger padded side, but at least `MIN_CROP_PX` pixels
   (a 5-px bird is unclassifiable without context), centred on the box;
4. where the square crosses the frame's edge, shift it back inside rather than clip it: the
   crop stays square and still holds the whole padded box, so the loader's square crops lose
   nothing. Only a square larger than the frame is clipped: to the frame's extent in that
   direction, and as square as the padded box allows in the other.

The window is rounded to whole source pixels. The crop is then resized once so that its shorter
side is `--size`, like whole frames, and never upscaled.
"""

from __future__ import annotations

import io

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from camtrap_fast.shards.encode import CROP_PADDING, EncodeConfig, decode_errors, open_oriented, to_jpeg

MIN_CROP_PX = 32  # smallest crop side, in source pixels
_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that turn the stored image by 90 degrees
_DCT_SCALES = (8, 4, 2, 1)  # what libjpeg can decode straight to (Image.draft)

Window = tuple[int, int, int, int]  # left, top, right, bottom in displayed source pixels


@dataclass(frozen=True)
class EncodedCrop:
    jpeg: bytes
    window: Window
    frame: tuple[int, int]  # width, height of the displayed source photo


def crop_window(bbox: Sequence[float], width: int, height: int, padding: float = CROP_PADDING,
                min_side: int = MIN_CROP_PX) -> Window:
    """The pixel window the crop rule cuts for normalized `bbox` from a `width` x `height` displayed frame."""
    if width < 1 or height < 1:
        raise ValueError(f"frame {width}x{height} has no pixels")
    x, y, w, h = (float(v) for v in bbox)
    x0, x1 = _clip(x * width, width), _clip((x + w) * width, width)
    y0, y1 = _clip(y * height, height), _clip((y + h) * height, height)
    padded_w, padded_h = (x1 - x0) * (1 + 2 * padding), (y1 - y0) * (1 + 2 * padding)
    side = max(padded_w, padded_h, min_side)
    # As square as the frame allows: a side clipped by one frame dimension caps the other one too,
    # unless the padded box itself is longer that way.
    extent_x = min(width, max(padded_w, min(side, height)), side)
    extent_y = min(height, max(padded_h, min(side, width)), side)
    left, span_x = _place((x0 + x1) / 2, extent_x, width)
    top, span_y = _place((y0 + y1) / 2, extent_y, height)
    return left, top, left + span_x, top + span_y


def _clip(value: float, limit: int) -> float:
    return min(max(value, 0.0), float(limit))


def _place(centre: float, extent: float, limit: int) -> tuple[int, int]:
    """(start, length) of a whole-pixel span of about `extent` centred on `centre`, shifted into [0, limit]."""
    span = max(1, min(round(extent), limit))
    return int(min(max(round(centre - span / 2), 0), limit - span)), span


def encode_crops(path: str | bytes, bboxes: Sequence[Sequence[float]], config: EncodeConfig) -> list[EncodedCrop]:
    """One shard JPEG per box of the photo at `path`, in the order given; raises EncodeRejected like encode_image.

    `bboxes` are normalized [x_min, y_min, width, height] in the displayed frame; `config` gives the
    size, quality and crop padding (a shard's manifest records the padding its crops were cut with).

    Each crop's pixels depend only on (photo, box, size, quality, padding), never on the other boxes of
    the photo: the DCT scale is chosen per crop, and the photo is decoded once per distinct scale.
    """
    stored, (width, height), is_jpeg = _probe(path)
    windows = [crop_window(bbox, width, height, config.crop_padding) for bbox in bboxes]
    scales = [_dct_scale(window, config.size) if is_jpeg else 1 for window in windows]
    crops: dict[int, EncodedCrop] = {}
    for scale in sorted(set(scales)):
        draft = (max(1, stored[0] // scale), max(1, stored[1] // scale)) if scale > 1 else None
        decoded = open_oriented(path, draft)
        # libjpeg scales by exactly 1/scale (the last row and column may be partial), so source pixel
        # coordinates map to decoded ones by that factor, not by the ratio of the rounded-up sizes.
        factor = round(width / decoded.size[0])
        for i in (i for i, s in enumerate(scales) if s == scale):
            crops[i] = EncodedCrop(to_jpeg(_cut(decoded, windows[i], factor, config.size), config.quality),
                                   windows[i], (width, height))
    return [crops[i] for i in range(len(windows))]


def _dct_scale(window: Window, size: int) -> int:
    """The largest DCT scale that leaves the window's shorter side at `size` pixels or more."""
    shorter = min(window[2] - window[0], window[3] - window[1])
    return next(s for s in _DCT_SCALES if shorter / s >= size or s == 1)


def _cut(image: Image.Image, window: Window, factor: int, size: int) -> Image.Image:
    """The window (in source pixels) of `image` (decoded at 1/factor), shorter side resized to `size`."""
    width, height = window[2] - window[0], window[3] - window[1]
    shorter = min(width, height)
    if shorter <= size and factor == 1:
        return image.crop(window)  # never upscaled
    target = (max(1, round(width * size / shorter)), max(1, round(height * size / shorter)))
    box = tuple(v / factor for v in window)
    return image.resize(target, Image.Resampling.BICUBIC, box=box)


def frame_size(path: str) -> tuple[int, int]:
    """Width and height of the photo as displayed (EXIF orientation applied), without decoding it."""
    return _probe(path)[1]


def _probe(path: str | bytes) -> tuple[tuple[int, int], tuple[int, int], bool]:
    """(stored size, displayed size, is a JPEG) from the file's header."""
    with decode_errors():
        with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as image:
            stored = image.size
            orientation = image.getexif().get(0x0112, 1)
            is_jpeg = image.format == "JPEG"
    return stored, ((stored[1], stored[0]) if orientation in _SWAPS_SIDES else stored), is_jpeg
