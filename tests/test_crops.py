"""The crop rule: its geometry (padding, square, frame edges, tiny boxes) and the pixels it cuts from real photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from camtrap_fast.shards.crops import MIN_CROP_PX, crop_window, encode_crops, frame_size
from camtrap_fast.shards.encode import EncodeConfig, EncodeRejected


def test_box_is_padded_and_made_square_around_its_centre():
    # 576 x 324 px box in a 1920 x 1080 frame; 10 % padding -> 691.2 x 388.8; square side 691
    assert crop_window([0.35, 0.35, 0.3, 0.3], 1920, 1080) == (614, 194, 1305, 885)
    # no padding: the square side is the box's longer side, centred on the box centre (960, 540)
    assert crop_window([0.35, 0.35, 0.3, 0.3], 1920, 1080, padding=0.0) == (672, 252, 1248, 828)
    # a tall box: the square widens it
    assert crop_window([0.5, 0.25, 0.05, 0.5], 1000, 1000, padding=0.0) == (275, 250, 775, 750)


def test_square_at_the_frame_edge_is_shifted_inside_not_clipped():
    # box touching the left edge: the 389-px square starts at 0 instead of being cut to 291 px
    assert crop_window([0.0, 0.4, 0.1, 0.3], 1920, 1080) == (0, 400, 389, 789)
    # bottom right corner
    left, top, right, bottom = crop_window([0.9, 0.9, 0.1, 0.1], 1000, 1000)
    assert (right, bottom) == (1000, 1000) and right - left == bottom - top == 120


def test_square_larger_than_the_frame_is_clipped_and_stays_as_square_as_the_box_allows():
    assert crop_window([0.0, 0.0, 1.0, 1.0], 1920, 1080) == (0, 0, 1920, 1080)  # the whole frame
    # padded 1382 x 1296 box in a 1080-px-high frame: full height, the padded box's width
    assert crop_window([0.1, 0.0, 0.6, 1.0], 1920, 1080) == (77, 0, 1459, 1080)
    # a box as tall as the frame but narrow: a full-height square
    assert crop_window([0.45, 0.0, 0.1, 1.0], 1920, 1080) == (420, 0, 1500, 1080)


def test_tiny_and_empty_boxes_get_the_minimum_side():
    assert crop_window([0.5, 0.5, 0.0, 0.0], 1920, 1080) == (944, 524, 976, 556)
    assert crop_window([0.999, 0.999, 0.001, 0.001], 1920, 1080) == (1888, 1048, 1920, 1080)
    assert crop_window([0.5, 0.5, 0.001, 0.001], 20, 10) == (5, 0, 15, 10)  # frame smaller than the minimum
    assert crop_window([0.5, 0.5, 0.0, 0.0], 1, 1) == (0, 0, 1, 1)


def test_box_poking_out_of_the_frame_is_clipped_first():
    assert crop_window([-0.05, 0.2, 0.15, 0.2], 1000, 1000, padding=0.0) == (0, 200, 200, 400)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(-0.01, 1.0), y=st.floats(-0.01, 1.0), w=st.floats(0.0, 1.0), h=st.floats(0.0, 1.0),
       width=st.integers(1, 4000), height=st.integers(1, 4000), padding=st.floats(0.0, 1.0))
def test_window_lies_in_the_frame_holds_the_box_and_is_square_when_it_fits(x, y, w, h, width, height, padding):
    left, top, right, bottom = crop_window([x, y, w, h], width, height, padding)
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    x0, x1 = np.clip([x * width, (x + w) * width], 0, width)
    y0, y1 = np.clip([y * height, (y + h) * height], 0, height)
    assert left <= x0 + 1 and right >= x1 - 1 and top <= y0 + 1 and bottom >= y1 - 1  # the whole box, to a pixel
    side = max((x1 - x0) * (1 + 2 * padding), (y1 - y0) * (1 + 2 * padding), MIN_CROP_PX)
    if side + 1 < min(width, height):
        assert right - left == bottom - top


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


def test_crop_is_the_box_region_of_the_photo(data_dir):
    photo = str(data_dir / "ena24-small" / "2480.jpg")  # 1920 x 1080
    bbox = [0.35, 0.35, 0.3, 0.3]
    (crop,) = encode_crops(photo, [bbox], EncodeConfig(size=256))
    assert crop.frame == (1920, 1080) and crop.window == crop_window(bbox, 1920, 1080)
    got = Image.open(io.BytesIO(crop.jpeg))
    assert got.size == (256, 256) and got.mode == "RGB"
    full = Image.open(photo).convert("RGB")  # full-resolution decode, no DCT scaling
    expected = full.crop(crop.window).resize((256, 256), Image.Resampling.BICUBIC)
    assert _mean_abs_diff(got, expected) < 3
    # and not some other region of the same photo
    left, top, right, bottom = crop.window
    shifted = full.crop((left + 200, top, right + 200, bottom)).resize((256, 256), Image.Resampling.BICUBIC)
    assert _mean_abs_diff(got, shifted) > 4 * _mean_abs_diff(got, expected)


def test_boxes_refer_to_the_displayed_photo_of_an_exif_rotated_file(data_dir):
    edge = data_dir / "edge-cases"
    rotated = str(edge / "african_elephants_with_exif_orientation.jpg")  # stored 1536 x 2048, EXIF 6
    upright = str(edge / "african_elephants.jpg")  # the same scene stored as displayed
    assert frame_size(rotated) == frame_size(upright) == (2048, 1536)
    bbox = [0.3, 0.2, 0.25, 0.35]
    (a,), (b,) = (encode_crops(p, [bbox], EncodeConfig(size=128)) for p in (rotated, upright))
    assert a.window == b.window
    crop_a, crop_b = Image.open(io.BytesIO(a.jpeg)), Image.open(io.BytesIO(b.jpeg))
    assert _mean_abs_diff(crop_a, crop_b) < 4
    # the crop matches the box region of the displayed photo (full decode; fine grass texture keeps the
    # difference at ~5 on 0-255), not that region shifted by 60 px (~26), nor the stored, unrotated one (~44)
    displayed = ImageOps.exif_transpose(Image.open(rotated)).convert("RGB")
    assert _mean_abs_diff(crop_a, displayed.crop(a.window).resize(crop_a.size, Image.Resampling.BICUBIC)) < 8
    left, top, right, bottom = a.window
    shifted = displayed.crop((left + 60, top, right + 60, bottom)).resize(crop_a.size, Image.Resampling.BICUBIC)
    assert _mean_abs_diff(crop_a, shifted) > 15
    stored = Image.open(rotated).convert("RGB").resize((2048, 1536))
    assert _mean_abs_diff(crop_a, stored.crop(a.window).resize(crop_a.size)) > 15


def test_each_crop_depends_only_on_its_own_box(data_dir):
    photo = str(data_dir / "ena24-small" / "49.jpg")
    big, tiny = [0.36, 0.32, 0.3, 0.28], [0.7, 0.7, 0.01, 0.01]
    config = EncodeConfig(size=128)
    together = encode_crops(photo, [tiny, big], config)  # two DCT scales in one call
    alone = [encode_crops(photo, [box], config)[0] for box in (tiny, big)]
    assert [c.jpeg for c in together] == [c.jpeg for c in alone]
    # the tiny box is cut at the minimum side, from the full-resolution photo, and never upscaled
    assert Image.open(io.BytesIO(together[0].jpeg)).size == (MIN_CROP_PX, MIN_CROP_PX)


def test_padding_and_rejections(data_dir, tmp_path):
    photo = str(data_dir / "ena24-small" / "2480.jpg")
    loose = encode_crops(photo, [[0.35, 0.35, 0.3, 0.3]], EncodeConfig(size=64, crop_padding=0.5))[0]
    assert loose.window == crop_window([0.35, 0.35, 0.3, 0.3], 1920, 1080, padding=0.5)
    with pytest.raises(ValueError, match="--crop-padding"):
        EncodeConfig(crop_padding=1.5)
    with pytest.raises(EncodeRejected) as missing:
        encode_crops(str(tmp_path / "gone.jpg"), [[0, 0, 1, 1]], EncodeConfig())
    assert missing.value.reason == "missing file"
    truncated = str(data_dir / "edge-cases" / "african_elephants_truncated_file.jpg")
    with pytest.raises(EncodeRejected) as cut:
        encode_crops(truncated, [[0.1, 0.1, 0.5, 0.5]], EncodeConfig())
    assert cut.value.reason == "truncated"
