"""The JPEG header walk every sample gets before decoding: its size, and a structural check that catches damage.

Reading the size from the header (not by decoding) is what lets the train crop windows be drawn before any
pixel is decoded, and the check turns a cut-off or overwritten sample into a message that names it.
"""

from __future__ import annotations


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
