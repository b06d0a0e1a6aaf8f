"""uint8 NHWC image batches -> normalized float32 NCHW inputs, batched, on the device.

Loaders move uint8 across the host/device boundary (a quarter of float32's
bytes) and normalize here, in one place for both backends. The result is NCHW
with channels_last strides: the NHWC batch is permuted, never copied, and
convolutions on CUDA run fastest in that layout.

On CPU the conversion runs on the threads the loader's decoders leave free
(`conversion_threads`), not on every intra-op thread torch has: it is a memory-
bound pass of ~4-5 ms per 64 images at 224 px, and it runs while the workers
decode the next batches. An OpenMP team of two beside two busy workers on two
cores waits for a preempted thread at every join: 250-655 ms of conversion per
2,048 images on two threads, 222-430 ms capped at one; the loader benchmark's
float batches went from 1,850 to 2,305-3,076 images/s (bench/README.md, loader,
2026-12-04).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from camtrap_fast.pipelines.config import available_cpus

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_affine_cache: dict[tuple[torch.device, int], tuple[torch.Tensor, torch.Tensor]] = {}


def _affine(device: torch.device, width: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, bias) with x * scale + bias == (x / 255 - mean) / std, repeated `width` times, cached."""
    key = (device, width)
    if key not in _affine_cache:
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64) * 255
        std = torch.tensor(IMAGENET_STD, dtype=torch.float64) * 255
        scale, bias = (1 / std).float().repeat(width), (-mean / std).float().repeat(width)
        _affine_cache[key] = (scale.to(device), bias.to(device))
    return _affine_cache[key]


def conversion_threads(busy_decoders: int) -> int:
    """Intra-op threads for the CPU conversion beside `busy_decoders` decoding workers or threads: the CPUs they
    leave, at least one (module docstring)."""
    return max(1, available_cpus() - busy_decoders)


@contextlib.contextmanager
def _intra_op_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads cut to at most `threads` for the duration (None: as they are; never more than they
    were, which a run's --threads may have set), restored after. With the OpenMP backend the count is the calling
    thread's own, so no other thread's ops change."""
    previous = torch.get_num_threads()
    if threads is None or threads >= previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def to_inputs(images: torch.Tensor, device: torch.device, threads: int | None = None) -> torch.Tensor:
    """(N, H, W, 3) uint8 on any device -> (N, 3, H, W) float32 on `device`, ImageNet-normalized. `threads`: at most
    this many intra-op threads for the CPU conversion (None: torch's count; a loader passes `conversion_threads`);
    the values do not depend on it."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected a (N, H, W, 3) uint8 batch, got {tuple(images.shape)} {images.dtype}")
    images = images.to(device, non_blocking=device.type == "cuda")  # non-blocking only pays off from pinned memory
    n, height, width, _ = images.shape
    # Rows of W*3 values against a scale and bias tiled to match: broadcasting a 3-vector over the last
    # dimension would leave CPU kernels a 3-element inner loop, several times slower to vectorize.
    scale, bias = _affine(images.device, width)
    rows = images.contiguous().view(n, height, width * 3)
    with _intra_op_threads(threads if images.device.type == "cpu" else None):
        if images.device.type == "cpu":
            # numpy asks the kernel for transparent huge pages on large arrays and torch's CPU allocator does not:
            # first-touch page faults on a fresh 38 MB batch otherwise cost as much as the arithmetic.
            inputs = torch.from_numpy(np.empty(rows.shape, dtype=np.float32))
            inputs.copy_(rows)
        else:
            inputs = rows.float()
        torch.addcmul(bias, inputs, scale, out=inputs)  # in place: no second full-size float temporary
    return inputs.view(n, height, width, 3).permute(0, 3, 1, 2)


def to_images(inputs: torch.Tensor) -> torch.Tensor:
    """Inverse of `to_inputs` (rounded back to uint8 NHWC), for previews and tests."""
    scale, bias = _affine(inputs.device)
    nhwc = inputs.permute(0, 2, 3, 1)
    return ((nhwc - bias) / scale).round_().clamp_(0, 255).to(torch.uint8)
