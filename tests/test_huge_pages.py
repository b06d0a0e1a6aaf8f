"""train/huge_pages.py: the phase-2 features moved into transparent huge pages, contents unchanged."""

import sys

import pytest
import torch

from camtrap_fast.train import huge_pages


def test_a_large_tensor_keeps_its_values_and_a_second_move_finds_it_done():
    features = torch.randn(40_000, 512).to(torch.float16)  # 41 MB
    before = features.clone()
    first = huge_pages.move_to_huge_pages(features)
    assert torch.equal(features, before)
    if sys.platform.startswith("linux") and first:
        assert huge_pages.move_to_huge_pages(features) is True
    assert torch.equal(features, before)


@pytest.mark.parametrize("tensor", [torch.zeros(1000, 512), torch.zeros(40_000, 512)[:, ::2]],
                         ids=["small", "not-contiguous"])
def test_small_or_strided_tensors_are_left_alone(tensor):
    assert huge_pages.move_to_huge_pages(tensor) is False


def test_a_refusing_kernel_leaves_training_on_ordinary_pages(monkeypatch):
    calls = []
    monkeypatch.setattr(huge_pages, "_madvise", lambda: lambda start, length, advice: calls.append(advice) or -1)
    assert huge_pages.move_to_huge_pages(torch.zeros(40_000, 512)) is False
    assert calls == [huge_pages.MADV_HUGEPAGE]
