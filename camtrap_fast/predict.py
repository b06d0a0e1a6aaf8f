"""Classify new photos with a trained run: any size, EXIF-rotated, CMYK, grayscale; bad files listed, not fatal.

Each photo goes through exactly what training images went through: the shard
step's resize-and-re-encode (`encode_image`), then the eval transform.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from camtrap_fast.atomic import open_atomic
from camtrap_fast.errors import UserError
from camtrap_fast.pipelines import LoaderConfig, eval_inputs
from camtrap_fast.shards.encode import EncodeConfig, EncodeRejected, encode_image

@dataclass(frozen=True)
class Prediction:
    path: str
    top: tuple[tuple[str, float], ...]  # (class, probability), best first; empty when the file was rejected
    error: str = ""


# In a folder, only files with these suffixes are photos to classify (a README.md or a .csv beside the photos
# is not a failed prediction); a file named on the command line is always tried, whatever its name.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})


def list_images(paths: list[Path]) -> tuple[list[Path], int]:
    """(files as given plus every non-hidden image file below a given folder, non-image files skipped)."""
    out, skipped = [], 0
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and not any(
                    part.startswith(".") for part in p.relative_to(path).parts)):
                if found.suffix.lower() in IMAGE_SUFFIXES:
                    out.append(found)
                else:
                    skipped += 1
        else:
            out.append(path)  # a missing file is reported as such by encode_image
    if not out:
        raise UserError(f"no image files to classify in {', '.join(map(str, paths))}"
                        + (f" ({skipped} other files skipped)" if skipped else ""))
    return out, skipped


@torch.inference_mode()
def predict_files(model, classes: list[str], files: list[Path], preprocessing: dict, top_k: int = 5,
                  batch_size: int = 64, device: torch.device = torch.device("cpu")) -> list[Prediction]:
    encode = EncodeConfig(size=preprocessing["shard_size"], quality=preprocessing.get("shard_quality", 90))
    transform = LoaderConfig(mode="eval", image_size=preprocessing["image_size"], device=str(device), workers=0,
                             eval_crop=preprocessing.get("eval_crop", "center"))
    k = max(1, min(top_k, len(classes)))
    results: dict[int, Prediction] = {}
    pending: list[tuple[int, bytes]] = []

    def flush():
        if not pending:
            return
        inputs = eval_inputs([data for _, data in pending], transform, device).contiguous()
        probs = torch.softmax(model(inputs).float(), dim=1).cpu()
        values, indices = probs.topk(k, dim=1)
        for (i, _), vals, idx in zip(pending, values.tolist(), indices.tolist()):
            results[i] = Prediction(str(files[i]), tuple((classes[c], p) for c, p in zip(idx, vals)))
        pending.clear()

    for i, path in enumerate(files):
        try:
            pending.append((i, encode_image(str(path), encode)))
        except EncodeRejected as rejected:
            results[i] = Prediction(str(path), (), f"{rejected.reason}: {rejected.detail}")
        if len(pending) == batch_size:
            flush()
    flush()
    return [results[i] for i in range(len(files))]


def write_predictions(out: Path, predictions: list[Prediction], top_k: int) -> None:
    with open_atomic(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "predicted", "confidence", f"top{top_k}", "error"])
        for p in predictions:
            best = p.top[0] if p.top else ("", float("nan"))
            writer.writerow([p.path, best[0], f"{best[1]:.4f}" if p.top else "",
                             ";".join(f"{c}:{v:.4f}" for c, v in p.top), p.error])
