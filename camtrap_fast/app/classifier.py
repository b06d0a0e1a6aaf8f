"""Uploaded files -> top-5 species, the model's input and (with a MegaDetector file) each animal's box.

Every upload is written into a fresh folder under the app's temporary folder and removed when answered: the app
writes nowhere else. Photos go through `predict.classify` exactly as `camtrap-fast predict` sends them (with
the run's model, shard-step preprocessing and eval transform, and for detections the run's crop rule and
`predict.items.detection_items`' selection), so the app and predict classify alike.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from camtrap_fast.errors import UserError
from camtrap_fast.predict.classify import classify, eval_transform
from camtrap_fast.predict.items import DetectionOptions, Item, detection_items

TOP_K = 5
PREVIEW_PX = 480
MAX_FILES = 64


@dataclass(frozen=True)
class Upload:
    name: str  # as the browser gave it (a file name, no folders)
    data: bytes


def _safe_name(name: str, used: set[str]) -> str:
    """A plain file name for an upload (no folders, no odd characters), unique within the request."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(name.replace("\\", "/")).name).strip("._") or "photo"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{n}_{stem}"
    used.add(candidate)
    return candidate


def _png(array: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _preview(path: Path, boxes: list) -> str | None:
    """The photo as displayed (EXIF orientation applied), small, with the detections' boxes."""
    from PIL import Image, ImageDraw, ImageOps

    try:
        with Image.open(path) as opened:
            opened.draft("RGB", (PREVIEW_PX * 2, PREVIEW_PX * 2))
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    image.thumbnail((PREVIEW_PX, PREVIEW_PX))
    draw = ImageDraw.Draw(image)
    w, h = image.size
    for n, (x, y, bw, bh) in enumerate(boxes, start=1):
        draw.rectangle([x * w, y * h, (x + bw) * w, (y + bh) * h], outline=(230, 40, 40), width=max(2, w // 200))
        draw.text((x * w + 4, y * h + 2), str(n), fill=(255, 255, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class AppClassifier:
    """The run's model, loaded once; `classify` answers one request (thread-safe: one at a time)."""

    def __init__(self, run: Path, device: str, temp_root: Path):
        from camtrap_fast.devices import resolve_device
        from camtrap_fast.train.rundir import Run

        self.run = Run(run)
        self.device = resolve_device(device)
        self.model, _, self.classes = self.run.load_model(self.device)
        self.preprocessing = self.run.preprocessing()
        self.temp_root = temp_root
        self._lock = threading.Lock()

    def classify(self, uploads: list[Upload], detections: Upload | None) -> list[dict]:
        if not uploads:
            raise UserError("no photos given")
        if len(uploads) > MAX_FILES:
            raise UserError(f"{len(uploads)} photos at once; give at most {MAX_FILES}")
        with self._lock, tempfile.TemporaryDirectory(dir=self.temp_root, prefix="request-") as folder:
            return self._classify(Path(folder), uploads, detections)

    def _classify(self, folder: Path, uploads: list[Upload], detections: Upload | None) -> list[dict]:
        used: set[str] = set()
        names = [_safe_name(u.name, used) for u in uploads]
        if detections is None:
            for name, upload in zip(names, uploads):
                (folder / name).write_bytes(upload.data)
            # An item's `file` is its upload's position: two uploads may share a name.
            items = [Item(str(folder / name), str(n)) for n, name in enumerate(names)]
        else:
            items = self._detection_items(folder, uploads, detections)
        results = classify(self.model, items, self.preprocessing, device=self.device, keep_encoded=True)
        transform = eval_transform(self.preprocessing)
        answers: dict[int, dict] = {}
        for result in results:
            item = result.item
            answer = answers.setdefault(int(item.file), {"file": uploads[int(item.file)].name, "animals": [],
                                                         "boxes": [], "path": item.path})
            entry: dict = {"detection": item.detection, "conf": item.conf, "bbox": item.bbox}
            if result.probs is None:
                entry["error"] = result.error
            else:
                from camtrap_fast.pipelines.pil_backend import eval_image

                top = np.argsort(-result.probs, kind="stable")[:TOP_K]
                entry["top"] = [[self.classes[i], round(float(result.probs[i]), 4)] for i in top]
                entry["input"] = _png(eval_image(result.encoded, transform))
                entry["input_px"] = transform.image_size
            if item.bbox is not None:
                answer["boxes"].append(item.bbox)
                entry["number"] = len(answer["boxes"])
            answer["animals"].append(entry)
        for answer in answers.values():
            path = Path(answer.pop("path"))
            ok = any("top" in a for a in answer["animals"])
            answer["photo"] = _preview(path, answer["boxes"]) if ok and path.is_file() else None
        for n, upload in enumerate(uploads):
            if n not in answers:
                answers[n] = {"file": upload.name, "boxes": [], "photo": None, "animals": [
                    {"error": f"not classified: {detections.name if detections else 'the detections file'} does not "
                     "list it (or another photo of that name was given)"}]}
        return [answers[n] for n in range(len(uploads))]

    def _detection_items(self, folder: Path, uploads: list[Upload], detections: Upload) -> list[Item]:
        """Each photo placed at the path the MegaDetector file names it by (matched on the file name), then
        predict's own selection of the detections to classify."""
        try:
            listed = [entry.get("file", "") for entry in json.loads(detections.data).get("images", [])]
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError) as error:
            raise UserError(f"{detections.name}: not a MegaDetector batch-output file ({error})") from None
        by_name: dict[str, str] = {}
        for file in listed:
            by_name.setdefault(PurePosixPath(str(file).replace("\\", "/")).name, str(file).replace("\\", "/"))
        md_path = folder / "detections.json"
        md_path.write_bytes(detections.data)
        photos = folder / "photos"
        placed: dict[str, str] = {}  # the detections file's name for a photo -> its upload's position
        for n, upload in enumerate(uploads):
            relative = by_name.get(PurePosixPath(upload.name).name)
            if relative is None:
                continue
            target = (photos / relative).resolve()
            if photos.resolve() not in target.parents:  # a listed path that climbs out of the folder
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(upload.data)
            placed[relative] = str(n)
        if not placed:
            raise UserError(f"{detections.name}: lists none of the photos given (matched by file name)")
        photos.mkdir(exist_ok=True)
        crops = self.preprocessing.get("crops") or {}
        options = DetectionOptions().resolved(crops)
        empty = crops.get("empty_class") if crops.get("mode") == "detections" else None
        items = detection_items(md_path, photos, options, empty)
        from dataclasses import replace

        return [replace(item, file=placed[item.file.replace("\\", "/")]) for item in items
                if item.file.replace("\\", "/") in placed]
