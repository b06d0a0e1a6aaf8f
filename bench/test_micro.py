"""Micro-benchmarks of the hot functions (pytest-benchmark): `pytest bench/test_micro.py --benchmark-only`.

Not part of the test suite (tests/ holds correctness); run by `make bench`. Each group pairs our
function with the obvious alternative, so the table pytest-benchmark prints is the comparison.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camtrap_fast.sampling import epoch_order, parse_sampling, plan_sampling
from camtrap_fast.shards.encode import EncodeConfig, encode_image

DATA = Path(os.environ.get("CAMTRAP_FAST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PHOTO = DATA / "serengeti-samples" / "sequence-d04"


@pytest.fixture(scope="module")
def photo() -> Path:
    return sorted(PHOTO.glob("*.JPG"))[0]  # 2048 x 1536


@pytest.mark.benchmark(group="shard encode, one 3 MP photo")
def test_encode_image_dct_scaled(benchmark, photo):
    data = benchmark(encode_image, str(photo), EncodeConfig(size=256))
    assert min(Image.open(io.BytesIO(data)).size) == 256


@pytest.mark.benchmark(group="shard encode, one 3 MP photo")
def test_encode_naive_full_decode(benchmark, photo):
    def naive():
        with Image.open(photo) as image:
            image = image.convert("RGB")
            w, h = image.size
            image = image.resize((round(w * 256 / h), 256), Image.Resampling.BICUBIC)
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=90)
            return out.getvalue()

    benchmark(naive)


@pytest.fixture(scope="module")
def season9_labels() -> tuple[np.ndarray, dict]:
    import json

    counts = json.loads((DATA / "serengeti-s9-class-counts.json").read_text())["train"]
    labels = np.repeat(np.arange(len(counts)), list(counts.values()))
    return labels, counts


@pytest.mark.benchmark(group="epoch order, season 9 (155k samples)")
def test_epoch_order_exact(benchmark, season9_labels):
    labels, counts = season9_labels
    plan = plan_sampling(counts, parse_sampling("paper-ros-rus-15k"))
    order = benchmark(epoch_order, labels, plan, 0, 1)
    assert len(order) == plan.total_target


@pytest.mark.benchmark(group="epoch order, season 9 (155k samples)")
def test_weighted_random_draw(benchmark, season9_labels):
    import torch

    labels, counts = season9_labels
    plan = plan_sampling(counts, parse_sampling("paper-ros-rus-15k"))
    weights = torch.tensor(np.asarray(plan.target)[labels] / np.asarray(plan.original)[labels], dtype=torch.float64)
    benchmark(torch.multinomial, weights, plan.total_target, replacement=True)
