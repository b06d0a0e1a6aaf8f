"""The boxes of a COCO Camera Traps file, for `--crops annotations` (LILA sets with human boxes: ENA24, Caltech, ...).

COCO boxes are [x, y, width, height] in pixels of the image as annotated; they are normalized by
the image entry's own `width` and `height`, so they stay right when the photos on disk are a
resized copy. Annotations without a `bbox` (an "empty" image, a species seen but not boxed) give
no box; each box keeps its annotation's class, so a zebra and a human in one photo become a zebra
crop and a human crop.
"""

from __future__ import annotations

from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.ingest.coco import read_coco_json
from camtrap_fast.ingest.records import ANNOTATION, Box


def coco_boxes(json_path: Path) -> dict[str, tuple[Box, ...]]:
    """Boxes per image, keyed by `file_name` as the records' relpath spells it; in annotation order."""
    data = read_coco_json(json_path)
    names = {c.get("id"): str(c.get("name")) for c in data["categories"] if isinstance(c, dict)}
    images = {image.get("id"): image for image in data["images"] if isinstance(image, dict)}
    boxes: dict[str, list[Box]] = {}
    for annotation in data["annotations"]:
        if not isinstance(annotation, dict) or annotation.get("bbox") is None:
            continue
        image = images.get(annotation.get("image_id"))
        if image is None or annotation.get("category_id") not in names:
            continue  # the label loader has already refused or ignored it
        where = f"{json_path}: annotation {annotation.get('id', '?')} (image {image.get('id')})"
        width, height = image.get("width"), image.get("height")
        if not all(isinstance(v, (int, float)) and v > 0 for v in (width, height)):
            raise UserError(f"{where} has a bbox but its image has no width and height; COCO boxes are in pixels, "
                            "so --crops annotations needs both")
        relpath = Path(str(image["file_name"])).as_posix()
        bbox = annotation["bbox"]
        try:
            x, y, w, h = (float(v) for v in bbox)
            box = Box((x / width, y / height, w / width, h / height), len(boxes.get(relpath, [])), ANNOTATION,
                      label=names[annotation["category_id"]])
        except (TypeError, ValueError) as error:
            detail = error if isinstance(bbox, list) and len(bbox) == 4 else "not [x, y, width, height]"
            raise UserError(f"{where}: bad bbox {str(bbox)[:60]} ({detail})") from None
        boxes.setdefault(relpath, []).append(box)
    return {relpath: tuple(found) for relpath, found in boxes.items()}
