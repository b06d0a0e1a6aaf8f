"""The shard step's libjpeg-turbo 3 decode (shards/fastjpeg.py) changes nothing but speed: the shard JPEGs are
byte-identical with it and with PIL's decoder, for every kind of file, and PIL still handles what it does not."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from camtrap_fast.shards import fastjpeg
from camtrap_fast.shards.crops import encode_crops
from camtrap_fast.shards.encode import EncodeConfig, EncodeRejected, encode_image

BOXES = [[0.1, 0.1, 0.3, 0.4], [0.5, 0.2, 0.4, 0.7], [0.0, 0.0, 1.0, 1.0]]


def _outputs(path, size):
    """(whole-image JPEG, crop JPEGs) or the rejection (reason, detail)."""
    config = EncodeConfig(size=size)
    try:
        return encode_image(str(path), config), [c.jpeg for c in encode_crops(str(path), BOXES, config)]
    except EncodeRejected as rejected:
        return rejected.reason, rejected.detail


@pytest.fixture
def photos(data_dir):
    edge = sorted((data_dir / "edge-cases").glob("*.jpg"))
    return edge + sorted((data_dir / "ena24-small").glob("*.jpg"))[:3] + sorted((data_dir / "lila-mixed").glob("*.*"))[:3]


@pytest.fixture
def without_simplejpeg(monkeypatch):
    monkeypatch.setattr(fastjpeg, "simplejpeg", None)


def test_simplejpeg_is_installed():
    assert fastjpeg.available(), "simplejpeg is part of `make setup` (constraints.txt); the shard step is slower without"


@pytest.mark.parametrize("size", [256, 64])
def test_shard_jpegs_are_byte_identical_with_and_without_simplejpeg(photos, size, monkeypatch, tmp_path):
    png = tmp_path / "small.png"
    Image.new("RGBA", (120, 90), (10, 200, 30, 128)).save(png)
    files = photos + [png]
    fast = [_outputs(p, size) for p in files]
    monkeypatch.setattr(fastjpeg, "simplejpeg", None)
    slow = [_outputs(p, size) for p in files]
    for path, a, b in zip(files, fast, slow):
        assert a == b, path.name
    assert sum(isinstance(o[0], bytes) for o in fast) == len(files) - 1  # only the truncated file is rejected


def test_fast_path_decodes_plain_jpegs_and_leaves_the_rest_to_pil(data_dir, monkeypatch, tmp_path):
    calls = []
    decode_jpeg = fastjpeg.simplejpeg.decode_jpeg
    monkeypatch.setattr(fastjpeg.simplejpeg, "decode_jpeg", lambda *a, **k: calls.append(1) or decode_jpeg(*a, **k))
    edge = data_dir / "edge-cases"
    config = EncodeConfig()
    for name in ("african_elephants.jpg", "african_elephants_bw.jpg", "african_elephants_with_exif_orientation.jpg"):
        encode_image(str(edge / name), config)
    assert len(calls) == 3  # colour, grayscale, EXIF-rotated
    encode_image(str(edge / "african_elephants_cmyk.jpg"), config)
    png = tmp_path / "a.png"
    Image.new("RGB", (600, 400), (1, 2, 3)).save(png)
    encode_image(str(png), config)
    assert len(calls) == 3  # CMYK and PNG: PIL
    with pytest.raises(EncodeRejected) as rejected:  # libjpeg warns, so PIL decides: the reason PIL always gave
        encode_image(str(edge / "african_elephants_truncated_file.jpg"), config)
    assert rejected.value.reason == "truncated" and len(calls) == 4


def test_draft_scale_is_the_one_pil_picks(tmp_path):
    for width, height in [(2048, 1536), (1920, 1080), (1000, 700), (700, 1000), (255, 300), (5152, 3968), (1024, 768)]:
        out = io.BytesIO()
        Image.new("RGB", (width, height), (90, 120, 30)).save(out, format="JPEG")
        for request in [(256, 256), (64, 64), (300, 100), (1000, 1000)]:
            image = Image.open(io.BytesIO(out.getvalue()))
            image.draft("RGB", request)
            scale = fastjpeg.draft_scale((width, height), request)
            assert image.size == (-(-width // scale), -(-height // scale)), (width, height, request)


def test_scratch_buffer_reuse_does_not_leak_between_images(data_dir):
    edge = data_dir / "edge-cases"
    small, large = edge / "ocelot.jpg", edge / "african_elephants.jpg"
    config = EncodeConfig()
    first = encode_image(str(small), config)
    encode_image(str(large), config)
    assert encode_image(str(small), config) == first
    # crops never use the scratch buffer: the decoded photo outlives other decodes there
    assert [c.jpeg for c in encode_crops(str(small), BOXES, config)] == [
        c.jpeg for c in encode_crops(str(small), BOXES, config)]


def test_no_source_metadata_in_shard_jpegs(data_dir, without_simplejpeg):
    source = data_dir / "ena24-small" / "49.jpg"
    assert Image.open(source).info.get("comment")  # the camera's COM marker
    jpeg = encode_image(str(source), EncodeConfig())
    assert b"\xff\xfe" not in jpeg[: jpeg.find(b"\xff\xda")]  # no COM before the scan
    assert "exif" not in Image.open(io.BytesIO(jpeg)).info
