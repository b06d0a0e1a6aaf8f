"""MegaDetector batch-output JSON (format 1.x): which boxes the detector found in which image.

    {"info": {"format_version": "1.4", ...},
     "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
     "images": [{"file": "cam1/IMG_0001.JPG",
                 "detections": [{"category": "1", "conf": 0.93, "bbox": [x_min, y_min, width, height]}]},
                {"file": "cam1/IMG_0002.JPG", "failure": "Failure image access", "detections": null}]}

Boxes are normalized to the displayed image. `file` is relative to the folder the detector was run
on, which is how it is joined to a label source's images (see `ingest/crops.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.ingest.records import DETECTION, Box


@dataclass(frozen=True)
class ImageDetections:
    file: str  # as the detections file names it
    boxes: tuple[Box, ...]  # every detection, whatever its confidence; Box.index is its position in the list
    failure: str | None = None  # the detector's own words when it could not process the image


@dataclass(frozen=True)
class DetectionsFile:
    path: Path
    categories: dict[str, str]  # category id -> name
    images: dict[str, ImageDetections]  # join key (`join_key(file)`) -> detections
    sha256: str  # of the file's bytes: part of the shard fingerprint

    def find(self, relpath: str, path: str) -> ImageDetections | None:
        """The entry for an image named `relpath` by its label source (absolute `path`), if the file lists it."""
        return self.images.get(join_key(relpath)) or self.images.get(join_key(path))

    def category_ids(self, wanted: tuple[str, ...], flag: str = "--detection-categories") -> frozenset[str]:
        """Category ids for names or ids (case-insensitive), e.g. ("animal",) -> {"1"}."""
        by_name = {name.lower(): cid for cid, name in self.categories.items()}
        ids = set()
        for term in wanted:
            if term in self.categories:
                ids.add(term)
            elif term.lower() in by_name:
                ids.add(by_name[term.lower()])
            else:
                known = ", ".join(f"{cid}={name}" for cid, name in self.categories.items())
                raise UserError(f"{flag} {term}: not a category of {self.path} (it has {known})")
        return frozenset(ids)


def join_key(file: str) -> str:
    """How image paths are compared: forward slashes, no leading './' (Windows runs of the detector write '\\')."""
    key = file.replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def read_detections(path: str | os.PathLike) -> DetectionsFile:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: --detections file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: --detections needs a MegaDetector .json file, not a folder") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 JSON file") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: invalid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("detection_categories"), dict):
        hint = " (a COCO Camera Traps file? give it as SOURCE)" if isinstance(data, dict) and "annotations" in data else ""
        raise UserError(f"{path}: not a MegaDetector batch-output file (needs an 'images' list and a "
                        f"'detection_categories' object){hint}")
    version = str((data.get("info") or {}).get("format_version", "1"))
    if not version.startswith("1"):
        raise UserError(f"{path}: MegaDetector output format {version} is not supported (expected 1.x)")
    categories = {str(cid): str(name) for cid, name in data["detection_categories"].items()}
    images: dict[str, ImageDetections] = {}
    for i, entry in enumerate(data["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not entry["file"]:
            raise UserError(f"{where} has no 'file' name")
        where = f"{path}: images[{i}] ({entry['file']})"
        key = join_key(entry["file"])
        if key in images:
            raise UserError(f"{where} is listed twice")
        failure = entry.get("failure")
        detections = entry.get("detections") or []
        if not isinstance(detections, list):
            raise UserError(f"{where}: 'detections' is not a list")
        boxes = tuple(_box(detection, j, categories, where) for j, detection in enumerate(detections))
        images[key] = ImageDetections(entry["file"], boxes, str(failure) if failure else None)
    return DetectionsFile(path, categories, images, hashlib.sha256(raw).hexdigest())


def _box(detection, index: int, categories: dict[str, str], where: str) -> Box:
    if not isinstance(detection, dict):
        raise UserError(f"{where}: detection {index} is not an object")
    category, conf, bbox = detection.get("category"), detection.get("conf"), detection.get("bbox")
    if str(category) not in categories:
        raise UserError(f"{where}: detection {index} has category {category!r}, which detection_categories "
                        f"does not list ({', '.join(categories)})")
    if not isinstance(conf, (int, float)) or isinstance(conf, bool) or not 0 <= conf <= 1:
        raise UserError(f"{where}: detection {index} has conf {conf!r}; expected a number from 0 to 1")
    try:
        return Box(tuple(bbox), index, DETECTION, conf=float(conf), category=categories[str(category)])
    except (TypeError, ValueError) as error:
        raise UserError(f"{where}: detection {index}: {error}") from None
