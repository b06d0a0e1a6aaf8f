"""Items -> class probabilities, with a trained run's model.

Each photo goes through exactly what training images went through: the shard step's resize-and-re-encode
(`encode_image`, or `encode_crops` for detections: the same crop rule as `shard --detections`), then the
eval loaders' transform (`pipelines.eval_inputs`). A photo is decoded once however many of its detections
are classified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from camtrap_fast.pipelines import LoaderConfig, eval_inputs
from camtrap_fast.predict.items import Item
from camtrap_fast.shards.encode import EncodeConfig, EncodeRejected, encode_image


@dataclass(frozen=True, eq=False)
class Classified:
    item: Item
    probs: np.ndarray | None  # float32 (C,) class probabilities; None when the item could not be classified
    error: str = ""
    encoded: bytes | None = None  # the shard-step JPEG the model's input was made from (with keep_encoded)


@torch.inference_mode()
def classify(model, items: list[Item], preprocessing: dict, batch_size: int = 64,
             device: torch.device = torch.device("cpu"), keep_encoded: bool = False) -> list[Classified]:
    """One Classified per item, in item order; keep_encoded keeps each one's shard-step JPEG (the app shows the
    model's input made from it with `eval_transform`)."""
    encode = EncodeConfig(size=preprocessing["shard_size"], quality=preprocessing.get("shard_quality", 90),
                          **_crop_options(preprocessing))
    transform = eval_transform(preprocessing, device)
    results: dict[int, Classified] = {}
    pending: list[tuple[int, bytes]] = []

    def flush() -> None:
        if not pending:
            return
        inputs = eval_inputs([data for _, data in pending], transform, device).contiguous()
        probs = torch.softmax(model(inputs).float(), dim=1).cpu().numpy()
        for (i, data), row in zip(pending, probs):
            results[i] = Classified(items[i], row, encoded=data if keep_encoded else None)
        pending.clear()

    for path, positions in _by_photo(items):
        for i in positions:
            if items[i].not_classified:
                results[i] = Classified(items[i], None, items[i].not_classified)
        wanted = [i for i in positions if not items[i].not_classified]
        if not wanted:
            continue
        try:  # all of a photo's items are crops (detections), or it is one whole frame
            if items[wanted[0]].bbox is not None:
                jpegs = _crops(path, [items[i].bbox for i in wanted], encode)
            else:
                jpegs = [encode_image(path, encode)]
        except EncodeRejected as rejected:
            for i in wanted:
                results[i] = Classified(items[i], None, f"{rejected.reason}: {rejected.detail}")
            continue
        for i, data in zip(wanted, jpegs):
            pending.append((i, data))
            if len(pending) >= batch_size:
                flush()
    flush()
    return [results[i] for i in range(len(items))]


def eval_transform(preprocessing: dict, device: torch.device = torch.device("cpu")) -> LoaderConfig:
    """The run's eval transform (crop size, eval crop), as the eval loaders apply it."""
    return LoaderConfig(mode="eval", image_size=preprocessing["image_size"], device=str(device), workers=0,
                        eval_crop=preprocessing.get("eval_crop", "center"))


def _by_photo(items: list[Item]) -> list[tuple[str, list[int]]]:
    """Item positions grouped by photo, photos in first-appearance order."""
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.path, []).append(i)
    return list(groups.items())


def _crop_options(preprocessing: dict) -> dict:
    """The padding the run's training crops were cut with (the default for a whole-frame run)."""
    padding = (preprocessing.get("crops") or {}).get("padding")
    return {"crop_padding": padding} if padding is not None else {}


def _crops(path: str, bboxes: list, encode: EncodeConfig) -> list[bytes]:
    from camtrap_fast.shards.crops import encode_crops

    return [crop.jpeg for crop in encode_crops(path, bboxes, encode)]
