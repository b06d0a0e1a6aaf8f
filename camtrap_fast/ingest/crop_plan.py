"""Which crops each image gives: MegaDetector detections joined to a label source, or the source's own boxes.

Run between loading and filtering (`plan_crops`) and again after filtering (`settle_crops`):

* `--detections MD.json` (mode "detections"): an image is found in the detections file by its path
  relative to its label source's root (the `file` MegaDetector writes when run on that root; an
  absolute `file` matches the absolute path). Every detection of a wanted category with conf >=
  --min-detection-conf is one sample, labelled with the image's label. An image not in the file,
  with the detector's `failure`, or without a qualifying detection is rejected with that reason;
  with --empty-class NAME an image where the detector found nothing at all (no category at that
  confidence) becomes one whole-frame sample of NAME instead, whatever its label said -- at
  prediction time the detector's verdict is all there is. This happens before the filters, so
  --keep-fraction NAME=0.1 and --drop-classes can act on the empty class.
* `--crops annotations`: the label source's own boxes, each with its own class (COCO Camera Traps,
  Camtrap DP). After the filters, boxes of dropped classes go; an image left without a box is
  rejected (`no box`), except that images labelled --empty-class NAME stay whole frames: annotators
  draw no box on an empty photo.

Crops of one image ride on its record, so filters, splits (grouped by sequence) and accounting
stay per image and all crops of an image land in one split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.ingest import records as reasons
from camtrap_fast.ingest.camtrap_dp import camtrap_dp_boxes
from camtrap_fast.ingest.coco_boxes import coco_boxes
from camtrap_fast.ingest.filters import FilterConfig, apply_filters
from camtrap_fast.ingest.megadetector import ImageDetections, read_detections
from camtrap_fast.ingest.records import Box, Record, Rejection
from camtrap_fast.ingest.remote import reject_remote

MODES = ("none", "detections", "annotations")
DEFAULT_MIN_CONF = 0.2  # MegaDetector v5's usual threshold for "something is there"


@dataclass(frozen=True)
class CropConfig:
    mode: str = "none"  # none: whole frames
    detections: Path | None = None  # MegaDetector batch output (mode "detections")
    min_conf: float = DEFAULT_MIN_CONF
    categories: tuple[str, ...] = ("animal",)  # detection category names or ids
    empty_class: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"--crops {self.mode}: choose from {', '.join(MODES)}")
        if self.mode == "detections" and self.detections is None:
            raise UserError("--crops detections needs --detections MD.json (MegaDetector batch output)")
        if self.mode != "detections" and self.detections is not None:
            raise UserError(f"--detections cuts detector crops; it cannot be combined with --crops {self.mode}")
        if not 0.0 <= self.min_conf <= 1.0:
            raise UserError(f"--min-detection-conf {self.min_conf}: must be between 0 and 1")
        if not self.categories or not all(c.strip() for c in self.categories):
            raise UserError("--detection-categories: name at least one category, e.g. animal or animal,person")
        if self.empty_class is not None and not self.empty_class.strip():
            raise UserError("--empty-class: give the class name for images without a box, e.g. blank")
        if self.empty_class is not None and self.mode == "none":
            raise UserError("--empty-class applies to crops; add --detections MD.json or --crops annotations")


def select_images(records: list[Record], crops: CropConfig, filters: FilterConfig, format_used: str, source: Path,
                  image_root: Path | str | None, fetch_remote: bool = False) -> tuple[list[Record], list[Rejection], str]:
    """Loaded records -> the images to shard (with their boxes), every rejection, and the crop digest.
    `fetch_remote`: http(s) URLs are kept (fetched at shard time), not rejected."""
    local, remote = reject_remote(records, fetch_remote)
    local, uncropped, digest = plan_crops(local, crops, format_used, source, image_root)
    kept, filtered = apply_filters(local, filters, source_records=records + local)  # + the empty class
    kept, unboxed = settle_crops(kept, crops, filters.drop_classes)
    return kept, remote + uncropped + filtered + unboxed, digest


def plan_crops(records: list[Record], config: CropConfig, format_used: str, source: Path,
               image_root: Path | None = None) -> tuple[list[Record], list[Rejection], str]:
    """Attach boxes to records; return them, the images rejected for want of a crop, and a digest of what
    decided the crops (the detections file's bytes, the options, every box) for the shard fingerprint."""
    if config.mode == "none":
        return records, [], ""
    digest = hashlib.sha256(json.dumps([config.mode, config.min_conf, sorted(config.categories),
                                        config.empty_class]).encode())
    if config.mode == "annotations":
        boxes = annotation_boxes(format_used, source, image_root)
        records = [replace(r, boxes=boxes[r.relpath]) if boxes.get(r.relpath) else r for r in records]
        rejected = []
    else:
        records, rejected, file_sha = _join_detections(records, config)
        digest.update(file_sha.encode())
    for record in records:
        if record.boxes:
            digest.update(json.dumps([record.path, record.label, [_box_fields(b) for b in record.boxes]]).encode())
    return records, rejected, digest.hexdigest()


def settle_crops(records: list[Record], config: CropConfig,
                 drop_classes: tuple[str, ...]) -> tuple[list[Record], list[Rejection]]:
    """After the filters: drop annotation boxes of dropped classes and reject images left with no box."""
    if config.mode != "annotations":
        return records, []
    dropped = {name.lower() for name in drop_classes}
    empty = config.empty_class.lower() if config.empty_class else None
    kept, rejected = [], []
    for record in records:
        boxes = tuple(b for b in record.boxes if (b.label or record.label).lower() not in dropped)
        if boxes:
            kept.append(record if boxes == record.boxes else replace(record, boxes=boxes))
        elif record.label.lower() == empty:
            kept.append(replace(record, boxes=()))
        else:
            rejected.append(Rejection(record.path, reasons.NO_BOX, f"no box for {record.label}"))
    return kept, rejected


def annotation_boxes(format_used: str, source: Path, image_root: Path | None) -> dict[str, tuple[Box, ...]]:
    """The label source's own boxes per image, keyed by the records' relpath."""
    if format_used == "coco":
        return coco_boxes(source)
    if format_used == "camtrap-dp":
        return camtrap_dp_boxes(source, image_root)
    raise UserError(f"--crops annotations: a {format_used} source has no boxes (use a COCO Camera Traps .json or a "
                    "Camtrap DP package, or crop detector boxes with --detections MD.json)")


def select_detections(entry: ImageDetections, categories: frozenset[str], min_conf: float) -> tuple[Box, ...]:
    """The detections that become crops: category name in `categories`, conf >= min_conf, in file order.
    Prediction on detector output must pick its crops with this same rule."""
    return tuple(b for b in entry.boxes if b.conf >= min_conf and b.category in categories)


def _join_detections(records: list[Record], config: CropConfig) -> tuple[list[Record], list[Rejection], str]:
    detections = read_detections(config.detections)
    wanted = frozenset(detections.categories[i] for i in detections.category_ids(config.categories))
    kept, rejected = [], []
    for record in records:
        entry = detections.find(record.relpath, record.path)
        if entry is None:
            detail = f"{record.relpath} not in {detections.path.name}"
            rejected.append(Rejection(record.path, reasons.NOT_IN_DETECTIONS, detail))
            continue
        if entry.failure is not None:
            rejected.append(Rejection(record.path, reasons.DETECTOR_FAILURE, entry.failure))
            continue
        confident = [b for b in entry.boxes if b.conf >= config.min_conf]
        boxes = select_detections(entry, wanted, config.min_conf)
        if boxes:
            kept.append(replace(record, boxes=boxes))
        elif not confident and config.empty_class is not None:
            kept.append(replace(record, label=config.empty_class, labels=(config.empty_class,), boxes=()))
        else:
            rejected.append(Rejection(record.path, reasons.NO_DETECTION, _why_none(entry.boxes, confident, config)))
    if records and len(rejected) == len(records) and all(r.reason == reasons.NOT_IN_DETECTIONS for r in rejected) \
            and detections.images:
        # Nothing joined: almost always the detector ran on another folder than the label source's root.
        theirs = next(iter(detections.images.values())).file
        raise UserError(f"{detections.path}: none of the {len(records)} listed images is in it (it names files like "
                        f"'{theirs}', the label source like '{records[0].relpath}'); run MegaDetector on the label "
                        "source's image root, or point --image-root and the labels at the folder it ran on")
    return kept, rejected, detections.sha256


def _why_none(boxes: tuple[Box, ...], confident: list[Box], config: CropConfig) -> str:
    if confident:
        others = sorted({b.category for b in confident})
        return f"only {', '.join(others)} >= {config.min_conf:g} (not in --detection-categories)"
    if not boxes:
        return "the detector found nothing"
    return f"none >= {config.min_conf:g} (best {max(b.conf for b in boxes):.3f})"


def _box_fields(box: Box) -> list:
    return [box.bbox, box.index, box.origin, box.label, box.conf, box.category]
