"""COCO Camera Traps JSON (the LILA standard): images, annotations, categories, optional sequence facts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from camtrap_fast.errors import UserError, os_fault
from camtrap_fast.ingest import records as reasons
from camtrap_fast.ingest.records import Record, Rejection
from camtrap_fast.ingest.remote import image_locator


def load_coco(json_path: Path, image_root: Path | str | None) -> list[Record]:
    return load_coco_checked(json_path, image_root)[0]


def load_coco_checked(json_path: Path, image_root: Path | str | None) -> tuple[list[Record], list[Rejection]]:
    """Records, and a rejection for every annotation whose image_id is not in `images` (its label would be lost)."""
    data = read_coco_json(json_path)
    root = image_root or json_path.parent
    categories = {}
    for category in data["categories"]:
        try:
            categories[_id(category["id"])] = str(category["name"])
        except (KeyError, TypeError):
            raise UserError(f"{json_path}: a category lacks 'id' (a string or whole number) or 'name': "
                            f"{str(category)[:80]}") from None
    category_rank = {name: rank for rank, name in enumerate(categories.values())}

    per_image: dict = {}
    for annotation in data["annotations"]:
        try:
            image_id, category_id = annotation["image_id"], annotation["category_id"]
            if type(image_id) not in _ID_TYPES or type(category_id) not in _ID_TYPES:  # the checks, off the hot path
                image_id, category_id = _id(image_id), _id(category_id)
        except (KeyError, TypeError):
            raise UserError(f"{json_path}: annotation {str(annotation)[:80]} lacks 'image_id' or 'category_id' "
                            "(each a string or whole number)") from None
        if category_id not in categories:
            raise UserError(f"{json_path}: annotation {annotation.get('id', '?')} names unknown category_id {category_id}")
        names = per_image.get(image_id)
        if names is None:
            per_image[image_id] = [categories[category_id]]
        else:
            names.append(categories[category_id])

    records, listed = [], set()
    locate = image_locator(root)
    images = data.pop("images")
    for i, image in enumerate(images):
        images[i] = None  # each image's dict goes as its record comes: the source is never held twice
        try:
            image_id, file_name = image["id"], image["file_name"]
            if type(image_id) not in _ID_TYPES or type(file_name) is not str:
                image_id, file_name = _id(image_id), str(file_name)
        except (KeyError, TypeError):
            raise UserError(f"{json_path}: an image entry lacks 'id' (a string or whole number) or 'file_name': "
                            f"{str(image)[:80]}") from None
        listed.add(image_id)
        names = per_image.get(image_id, ())
        if len(names) == 1:  # the common case, spelled out: millions of images
            labels = (names[0],)
        else:
            # Several boxes of one species are one species; the primary label is the most annotated class
            # (ties: the earlier category), which only matters when multi-species images are kept.
            votes = Counter(names)
            labels = tuple(sorted(votes, key=lambda n: (-votes[n], category_rank[n])))
        frame = image.get("frame_num")
        path, relpath = locate(file_name)
        records.append(Record(path, relpath, labels[0] if labels else "", labels or ("",),
                              _text(image.get("location")), _text(image.get("seq_id")),
                              int(frame) if isinstance(frame, (int, float)) else None, _text(image.get("datetime"))))
    return records, _unknown_image_ids(json_path, data, per_image, listed)


def _unknown_image_ids(json_path: Path, data: dict, per_image: dict, listed: set) -> list[Rejection]:
    rejections = []
    if per_image.keys() <= listed:
        return rejections
    for annotation in data["annotations"]:
        if annotation["image_id"] not in listed:
            where = f"{json_path}#annotation={annotation.get('id', '?')}"
            rejections.append(Rejection(where, reasons.UNKNOWN_IMAGE_ID, f"image_id {annotation['image_id']!r} "
                                        f"(a {per_image[annotation['image_id']][0]!r} label) is not in 'images'"))
    return rejections


def read_coco_json(json_path: Path) -> dict:
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise os_fault(error, json_path, "read") from None
    except UnicodeDecodeError:
        raise UserError(f"{json_path}: not a UTF-8 JSON file") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{json_path}: invalid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict):
        raise UserError(f"{json_path}: not a COCO Camera Traps file (top level is not an object)")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        hint = (" (a MegaDetector output file? it holds detections, not labels: give a label source as SOURCE and "
                "this file as --detections)") if "detection_categories" in data else ""
        raise UserError(f"{json_path}: not a COCO Camera Traps file: no {', '.join(missing)} list{hint}")
    return data


def _id(value):
    """An id as COCO has them, a string or a whole number; anything else is a TypeError (caught as "lacks")."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"id {value!r} is not a string or a whole number")
    return value


_ID_TYPES = (str, int)  # by exact type: a bool is no id


def _text(value) -> str | None:
    return None if value is None or value == "" else value if type(value) is str else str(value)
