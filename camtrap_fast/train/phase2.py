"""Phase 2: freeze the backbone, cache its features once, retrain the final layer on the original data."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from camtrap_fast.head import HeadConfig, train_head
from camtrap_fast.model import split_backbone_head
from camtrap_fast.train.features import FeatureCache, cached_features, extract_to_cache, feature_tag


@dataclass(frozen=True)
class Phase2Result:
    head_state: dict
    best_epoch: int
    best_val_macro_f1: float
    extraction_seconds: float
    head_seconds: float
    caches: dict[str, FeatureCache]


def fit_phase2(model, config, manifest, loaders: dict, sizes: dict, device, features_dir: Path, phase1_weights: Path,
               loss_fn) -> Phase2Result:
    """`loaders` and `sizes`: eval loaders and sample counts per split present (train always)."""
    backbone, head = split_backbone_head(model)
    model.eval()  # BatchNorm statistics frozen: the backbone is a fixed feature extractor now
    transform = f"{config.arch}|{config.image_size}|{manifest.image_size}"
    caches = {}
    extraction_seconds = 0.0
    for split, loader in loaders.items():
        tag = feature_tag(phase1_weights, manifest.fingerprint, split, transform)
        cache = cached_features(features_dir / f"{split}.pt", tag,
                                lambda: extract_to_cache(backbone, loader, sizes[split], device, tag))
        extraction_seconds += cache.seconds
        caches[split] = cache

    train, val = caches["train"], caches.get("val")
    start = time.perf_counter()
    result = train_head(
        head,
        train.features, train.labels,
        val.features if val is not None else None, val.labels if val is not None else None,
        HeadConfig(epochs=config.head_epochs, lr=config.head_lr, batch_size=config.head_batch_size,
                   patience=config.head_patience, seed=config.seed, loss=loss_fn),
    )
    head_seconds = time.perf_counter() - start
    return Phase2Result(result.head_state, result.best_epoch, result.best_val_macro_f1, extraction_seconds,
                        head_seconds, caches)


@torch.inference_mode()
def head_predictions(head_state: dict, cache: FeatureCache):
    """(true, predicted, confidence) from cached features: no backbone pass needed for phase-2 evaluation."""
    weight, bias = head_state["weight"].float(), head_state["bias"].float()
    probs = torch.softmax(cache.features.float() @ weight.T + bias, dim=1)
    confidence, predicted = probs.max(dim=1)
    return cache.labels.numpy(), predicted.numpy(), confidence.numpy()
