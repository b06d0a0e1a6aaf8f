"""The shard step's fast JPEG decode: libjpeg-turbo 3 through `simplejpeg`, with PIL's decoder as the fallback.

Why: the DCT-scaled decode is ~90 % of the shard step (entropy decoding every coefficient of a 2-8 MP file),
so its speed is the step's speed. `simplejpeg` (PyPI wheels with libjpeg-turbo 3.1 linked in, numpy its only
dependency) decodes in one call straight into a 4-byte-per-pixel buffer that PIL wraps without a copy; PIL's
own decoder feeds libjpeg in chunks from Python and unpacks every row into its image memory. Measured on
60 real 1-20 MP camera-trap photos (median 3.1 MP), best of 9 per photo: the decode 7.98 vs 8.64 ms, the whole
shard step 9.26 vs 9.61 ms (bench/README.md, "Shard step").

The pixels are the same: both are libjpeg-turbo with the same IDCT and upsampling, at the DCT scale PIL's
`Image.draft` would pick (`draft_scale`), and tests/test_encode_fast.py checks that the shard JPEGs are
byte-identical with and without this path. So `simplejpeg` is optional: without it (or when its wheel does
not install) shards are the same, only slower. Anything this path does not cover is left to PIL: non-JPEG
files, CMYK/YCCK, and any file libjpeg warns about (truncated, corrupt), so that rejections and their
reasons are PIL's, exactly as without it.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

try:
    import simplejpeg
except ImportError:  # optional, see above: PIL decodes instead
    simplejpeg = None

_DCT_SCALES = (8, 4, 2, 1)
_scratch = threading.local()  # each thread's reusable decode buffer (see decode's `scratch`)


def available() -> bool:
    return simplejpeg is not None


def draft_scale(size: tuple[int, int], draft_size: tuple[int, int] | None) -> int:
    """The DCT scale (1, 2, 4 or 8) that PIL's `Image.draft(mode, draft_size)` picks for a JPEG of `size`."""
    if draft_size is None:
        return 1
    most = min(size[0] // draft_size[0], size[1] // draft_size[1])
    return next((s for s in _DCT_SCALES if most >= s), 1)


def decode(image: Image.Image, draft_size: tuple[int, int] | None, *, scratch: bool = False) -> Image.Image | None:
    """`image` (opened by PIL, not yet loaded) decoded at PIL's draft scale as an "RGBX" image (RGB plus a
    pad byte: how PIL stores RGB, so no repacking), in stored orientation; None where PIL must decode it.

    scratch: decode into this thread's reusable buffer instead of a fresh array: saves faulting in ~1 MB of
    new pages per photo (1-4 % of the shard step, measured), but the image is then valid only until this
    thread's next scratch decode, so only a caller that is done with it before then may ask for it."""
    if simplejpeg is None or image.format != "JPEG" or image.mode not in ("RGB", "L") or image.fp is None:
        return None
    image.fp.seek(0)
    data = image.fp.read()
    scale = draft_scale(image.size, draft_size)
    width, height = (-(-image.size[0] // scale), -(-image.size[1] // scale))  # libjpeg rounds scaled sizes up
    try:
        # min_* at exactly 1/scale of the size: libjpeg-turbo's smallest scaling factor (in eighths) that
        # reaches them is 1/scale, the one PIL's draft uses. strict: a libjpeg warning is an error here,
        # so a damaged file goes to PIL, which rejects it (or decodes it) as it always has.
        pixels = simplejpeg.decode_jpeg(data, "RGBX", min_height=height, min_width=width, strict=True,
                                        buffer=_scratch_buffer(width * height * 4) if scratch else None)
    except ValueError:
        return None
    if pixels.shape[:2] != (height, width):  # another libjpeg-turbo's choice of scale: never guess, let PIL do it
        return None
    return Image.frombuffer("RGBX", (width, height), pixels, "raw", "RGBX", 0, 1)


def _scratch_buffer(nbytes: int) -> np.ndarray:
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.size < nbytes:
        buffer = _scratch.buffer = np.empty(nbytes, np.uint8)
    return buffer
