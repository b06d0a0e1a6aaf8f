"""`make_loader`: the one place where a loader's backend (DALI | PIL) is decided, and its device resolved."""

from __future__ import annotations

import importlib.util
import logging

import torch

from camtrap_fast.devices import resolve_device
from camtrap_fast.errors import UserError
from camtrap_fast.pipelines.config import LoaderConfig
from camtrap_fast.pipelines.loader import Loader
from camtrap_fast.shards.manifest import Manifest

log = logging.getLogger(__name__)


def dali_available() -> bool:
    """Whether DALI is installed, without importing it (that takes seconds)."""
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except ModuleNotFoundError:
        return False


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        # DALI's win is decoding on the GPU; on CPU alone the PIL workers are faster (bench/README.md, loader).
        return "dali" if device.type == "cuda" and dali_available() else "pil"
    if backend == "dali" and not dali_available():
        raise UserError("backend dali: NVIDIA DALI is not installed (pip install nvidia-dali-cuda130); use backend pil")
    return backend


def make_loader(manifest: Manifest, split: str, config: LoaderConfig) -> Loader:
    """A loader for `split` of a shard directory, with backend and device resolved from `config`."""
    device = resolve_device(config.device)
    backend = resolve_backend(config.backend, device)
    if config.mode == "eval" and config.eval_crop == "center" and config.eval_resize > manifest.image_size:
        log.warning(
            "eval resize %d px is larger than the shards' %d px: images will be upsampled; "
            "re-shard with --size %d for sharper eval inputs",
            config.eval_resize,
            manifest.image_size,
            config.eval_resize,
        )
    if backend == "dali":
        from camtrap_fast.pipelines.dali_backend import DaliLoader

        return DaliLoader(manifest, split, config, device)
    from camtrap_fast.pipelines.pil_backend import PilLoader

    return PilLoader(manifest, split, config, device)
