"""Resize once at shard time: decode at reduced size, orient, convert to RGB, re-encode a clean baseline JPEG.

Camera-trap photos are 2-8 MP; decoding one costs 10-20x a 256-px JPEG. libjpeg's
DCT scaling (`Image.draft`) decodes straight to 1/2, 1/4 or 1/8 size, which is
where most of the speed comes from; the final resize is then on a small image.
The decode itself goes through libjpeg-turbo 3 where `simplejpeg` is installed
(fastjpeg.py: the same pixels, faster), else through PIL. Re-encoding also
guarantees that no corrupt or exotic JPEG reaches DALI.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from camtrap_fast.ingest import records as reasons
from camtrap_fast.shards import fastjpeg


class EncodeRejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


CROP_PADDING = 0.1  # of a box's width (left and right) and height (top and bottom); see shards/crops.py


@dataclass(frozen=True)
class EncodeConfig:
    size: int = 256  # shorter side in pixels; never upscaled
    quality: int = 90
    crop_padding: float = CROP_PADDING  # only used when cutting crops from boxes

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"--size {self.size}: must be at least 16 pixels")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality {self.quality}: must be between 1 and 100")
        if not 0.0 <= self.crop_padding <= 1.0:
            raise ValueError(f"--crop-padding {self.crop_padding}: must be between 0 and 1 (the fraction of a "
                             "box's width and height added on each side)")


def encode_image(path: str | bytes, config: EncodeConfig) -> bytes:
    """Return the shard JPEG for one source image (a path, or its bytes when fetched), or raise EncodeRejected."""
    # DCT scaling keeps both sides >= size. scratch: the decoded image is done with before this returns.
    image = open_oriented(path, (config.size, config.size), scratch=True)
    image = resize_shorter_side(image, config.size)
    return to_jpeg(image, config.quality)


def open_oriented(path: str | bytes, draft_size: tuple[int, int] | None, *, scratch: bool = False) -> Image.Image:
    """Decode `path` as RGB (mode "RGB", or "RGBX": the same pixels with PIL's pad byte) in its displayed
    orientation (EXIF applied), DCT-scaled to at least `draft_size` (in stored orientation) when given; every
    failure becomes EncodeRejected with its reason. scratch: see fastjpeg.decode (valid until the next one)."""
    with decode_errors():
        with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as image:
            decoded = fastjpeg.decode(image, draft_size, scratch=scratch)
            if decoded is not None:
                method = _EXIF_TRANSPOSE.get(image.getexif().get(_ORIENTATION, 1))
                return decoded if method is None else decoded.transpose(method)
            if draft_size is not None:
                image.draft("RGB", draft_size)
            image = ImageOps.exif_transpose(image)  # also loads (fully decodes) the image
            return to_rgb(image)


_ORIENTATION = 0x0112  # the EXIF tag
# What ImageOps.exif_transpose does for each EXIF orientation (the same table), for images decoded outside PIL.
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@contextmanager
def decode_errors() -> Iterator[None]:
    """Turn every way opening or decoding an image can fail into EncodeRejected with its reason."""
    try:
        yield
    except FileNotFoundError:
        raise EncodeRejected(reasons.MISSING_FILE, "no such file") from None
    except IsADirectoryError:
        raise EncodeRejected(reasons.NOT_AN_IMAGE, "is a directory") from None
    except UnidentifiedImageError:
        raise EncodeRejected(reasons.NOT_AN_IMAGE, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        message = str(error)
        reason = reasons.TRUNCATED if "truncated" in message.lower() else reasons.UNREADABLE
        raise EncodeRejected(reason, message.splitlines()[0] if message else type(error).__name__) from None


def to_jpeg(image: Image.Image, quality: int) -> bytes:
    """`image` ("RGB" or "RGBX") as the shard JPEG. PIL's encoder, not simplejpeg's: it was as fast here, and its
    bytes are the ones shards have always had (simplejpeg's differ, at 0.1 dB lower luma PSNR)."""
    out = io.BytesIO()
    # Baseline (not progressive), fixed quality, no EXIF: deterministic bytes every decoder handles. No comment
    # either: PIL copies the source's COM marker (camera firmware writes up to 1 KB there) from image.info, which
    # only images decoded by PIL have, so the bytes would depend on the decoder.
    image.save(out, format="JPEG", quality=quality, optimize=False, progressive=False, comment=b"")
    return out.getvalue()


def to_rgb(image: Image.Image) -> Image.Image:
    """CMYK, L, P, LA, RGBA, I;16 ... -> RGB; transparency is flattened onto black, as a decoder would show it."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size)
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        image = image.convert("I").point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    shorter = min(width, height)
    if shorter <= size:
        return image
    scale = size / shorter
    target = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image.resize(target, Image.Resampling.BICUBIC)
