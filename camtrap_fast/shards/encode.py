"""Resize once at shard time: decode at reduced size, orient, convert to RGB, re-encode a clean baseline JPEG.

Camera-trap photos are 2-8 MP; decoding one costs 10-20x a 256-px JPEG. libjpeg's
DCT scaling (`Image.draft`) decodes straight to 1/2, 1/4 or 1/8 size, which is
where most of the speed comes from; the final resize is then on a small image.
Re-encoding also guarantees that no corrupt or exotic JPEG reaches DALI.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from camtrap_fast.ingest import records as reasons


class EncodeRejected(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class EncodeConfig:
    size: int = 256  # shorter side in pixels; never upscaled
    quality: int = 90

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"--size {self.size}: must be at least 16 pixels")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality {self.quality}: must be between 1 and 100")


def encode_image(path: str, config: EncodeConfig) -> bytes:
    """Return the shard JPEG for one source image, or raise EncodeRejected with the reason."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (config.size, config.size))  # DCT scaling keeps both sides >= size
            image = ImageOps.exif_transpose(image)  # also loads (fully decodes) the image
            image = to_rgb(image)
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
    image = resize_shorter_side(image, config.size)
    out = io.BytesIO()
    # Baseline (not progressive), fixed quality, no EXIF: deterministic bytes every decoder handles.
    image.save(out, format="JPEG", quality=config.quality, optimize=False, progressive=False)
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
