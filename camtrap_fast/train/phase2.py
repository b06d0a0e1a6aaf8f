"""Phase 2: freeze the backbone, cache its features once, fit the final layer on them with the run's --phase2
method (the study's: retrain it on the original data), through the same registry as `heads`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from camtrap_fast.model import split_backbone_head
from camtrap_fast.train.features import (FeatureCache, cached_features, checkpoint_digest, extract_to_cache,
                                         feature_tag)
from camtrap_fast.train.heads.contract import HeadFit, HeadInputs
from camtrap_fast.train.heads.registry import fit_method
from camtrap_fast.train.session import Session


@dataclass(frozen=True)
class Phase2Result:
    fit: HeadFit
    extraction_seconds: float
    caches: dict[str, FeatureCache]


def cache_features(session: Session, model, loaders: dict) -> tuple[dict[str, FeatureCache], float]:
    """The frozen phase-1 backbone's features for every split in `loaders` (eval loaders), extracted at most
    once: a cache on disk made by this checkpoint, these shards and this transform is reused."""
    config, manifest = session.config, session.manifest
    backbone, _ = split_backbone_head(model)
    model.eval()  # BatchNorm statistics frozen: the backbone is a fixed feature extractor now
    transform = f"{config.model.arch}|{config.loader.image_size}|{manifest.image_size}|{config.loader.eval_crop}"
    caches, seconds = {}, 0.0
    checkpoint = checkpoint_digest(session.run.model_path(1))
    for split, loader in loaders.items():
        tag = feature_tag(checkpoint, manifest.fingerprint, split, transform)
        cache = cached_features(session.run.features_dir / f"{split}.pt", tag,
                                lambda: extract_to_cache(backbone, loader, session.sizes[split], session.device, tag))
        seconds += cache.seconds
        caches[split] = cache
    return caches, seconds


def fit_phase2(session: Session, model, loaders: dict) -> Phase2Result:
    """`loaders`: eval loaders per split present (train always)."""
    caches, extraction_seconds = cache_features(session, model, loaders)
    _, head = split_backbone_head(model)
    config = session.config
    inputs = HeadInputs.from_caches(head, caches, config.head, config.loss, config.seed)
    return Phase2Result(fit_method(config.head.method, inputs), extraction_seconds, caches)


@torch.inference_mode()
def head_predictions(head_state: dict, cache: FeatureCache):
    """(true, predicted, confidence) from cached features: no backbone pass needed for phase-2 evaluation."""
    weight, bias = head_state["weight"].float(), head_state["bias"].float()
    probs = torch.softmax(cache.features.float() @ weight.T + bias, dim=1)
    confidence, predicted = probs.max(dim=1)
    return cache.labels.numpy(), predicted.numpy(), confidence.numpy()
