"""Phase 2's feature cache: the frozen backbone runs once per split; the head trains on these tensors.

Features are stored fp16 (half the disk and memory; the head upcasts) and tagged
with a hash of the backbone checkpoint, the shards and the eval transform, so a
cache made by another model or from other data is never used by mistake.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from camtrap_fast.atomic import save_torch
from camtrap_fast.errors import UserError
from camtrap_fast.train.loops import autocast_for, model_layout

log = logging.getLogger(__name__)


class StaleFeatureCache(UserError):
    """The cache on disk was made by another checkpoint, other shards or another transform."""


@dataclass(frozen=True, eq=False)
class FeatureCache:
    features: torch.Tensor  # float16, N x D, in the split's index order
    labels: torch.Tensor  # int64
    tag: str
    seconds: float = 0.0  # extraction time; 0 when loaded from disk
    # Split positions of the rows: 0..N-1 unless --skip-corrupt left samples out (keys must follow them).
    positions: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.positions is None:
            object.__setattr__(self, "positions", torch.arange(len(self.labels), dtype=torch.int64))


def checkpoint_digest(checkpoint: Path):
    """The SHA-256 state after the checkpoint's bytes: read once per run, then `feature_tag` per split."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


def feature_tag(checkpoint, shards_fingerprint: str, split: str, transform: str) -> str:
    """checkpoint: `checkpoint_digest(path)`. What a cache was made from: checkpoint, shards, split, transform."""
    digest = checkpoint.copy()
    digest.update(f"|{shards_fingerprint}|{split}|{transform}".encode())
    return digest.hexdigest()[:32]


def extract_features(
    backbone: Callable[[torch.Tensor], torch.Tensor],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the frozen backbone over (inputs, labels) batches: fp16 features (N x D) and int64 labels, on the CPU.

    prepare: applied to each batch on the device before the backbone (e.g. uint8 -> normalized float),
    so only uint8 crosses the host-device boundary. An nn.Module backbone runs in eval mode.
    """
    device = torch.device(device)
    non_blocking = device.type == "cuda"
    modules = list(backbone.modules()) if isinstance(backbone, nn.Module) else []
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    features, labels = [], []
    try:
        with torch.inference_mode():
            for inputs, targets in batches:
                inputs = inputs.to(device, non_blocking=non_blocking)
                if prepare is not None:
                    inputs = prepare(inputs)
                features.append(backbone(inputs).flatten(1).to(torch.float16).to("cpu", non_blocking=non_blocking))
                labels.append(torch.as_tensor(targets).to(torch.int64).cpu())
        if non_blocking:
            torch.cuda.synchronize(device)
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode
    if not features:
        return torch.empty(0, 0, dtype=torch.float16), torch.empty(0, dtype=torch.int64)
    return torch.cat(features), torch.cat(labels)


def extract_to_cache(backbone, loader, num_samples: int, device: torch.device, tag: str) -> FeatureCache:
    """One pass of the frozen backbone over a split, in index order (eval transform, no augmentation)."""
    start = time.perf_counter()
    with autocast_for(device):
        features, labels = extract_features(backbone, loader.epoch(np.arange(num_samples, dtype=np.int64), 0), device,
                                            prepare=lambda inputs: model_layout(inputs, device))
    positions = np.setdiff1d(np.arange(num_samples, dtype=np.int64), np.asarray(loader.skipped_positions, np.int64))
    return FeatureCache(features, labels, tag, time.perf_counter() - start, torch.from_numpy(positions))


def save_features(path: Path, cache: FeatureCache) -> None:
    save_torch(path, {"features": cache.features, "labels": cache.labels, "tag": cache.tag,
                      "positions": cache.positions})


def load_features(path: Path, expected_tag: str) -> FeatureCache | None:
    """The cache at `path`; None if there is none; StaleFeatureCache if it was made from something else."""
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        tag = data["tag"]
    except Exception as error:  # a torn or foreign file: say which, never use it
        raise StaleFeatureCache(f"{path}: unreadable feature cache ({type(error).__name__}); delete it") from None
    if tag != expected_tag:
        raise StaleFeatureCache(f"{path}: feature cache was made from another checkpoint or other shards")
    return FeatureCache(data["features"], data["labels"], tag, positions=data.get("positions"))


def cached_features(path: Path, tag: str, extract) -> FeatureCache:
    """Load the cache if it matches `tag`, else run `extract()` and store the result."""
    try:
        cache = load_features(path, tag)
    except StaleFeatureCache as stale:
        log.warning("%s; extracting again", stale)
        cache = None
    if cache is None:
        cache = extract()
        save_features(path, cache)
    return cache
