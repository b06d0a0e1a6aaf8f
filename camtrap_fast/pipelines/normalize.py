"""uint8 NHWC image batches -> normalized float32 NCHW inputs, batched, on the device.

Loaders move uint8 across the host/device boundary (a quarter of float32's
bytes) and normalize here, in one place for both backends. The result is NCHW
with channels_last strides: the NHWC batch is permuted, never copied, and
convolutions on CUDA run fastest in that layout.
"""

from __future__ import annotations

import numpy as np
import torch

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


def to_inputs(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, H, W, 3) uint8 on any device -> (N, 3, H, W) float32 on `device`, ImageNet-normalized."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected a (N, H, W, 3) uint8 batch, got {tuple(images.shape)} {images.dtype}")
    images = images.to(device, non_blocking=device.type == "cuda")  # non-blocking only pays off from pinned memory
    n, height, width, _ = images.shape
    # Rows of W*3 values against a scale and bias tiled to match: broadcasting a 3-vector over the last
    # dimension would leave CPU kernels a 3-element inner loop, several times slower to vectorize.
    scale, bias = _affine(images.device, width)
    rows = images.contiguous().view(n, height, width * 3)
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
