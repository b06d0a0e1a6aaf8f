"""What `predict` classifies: whole photos, or the crops of a MegaDetector file's qualifying detections.

An `Item` is one classification: a photo, or one detection of a photo. Items that cannot be classified
(the detector failed on the photo, or found nothing confident enough) are kept with the reason, so every
photo the user pointed at appears in the output.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.ingest.crop_plan import DEFAULT_MIN_CONF

# In a folder, only files with these suffixes are photos to classify (a README.md or a .csv beside the photos
# is not a failed prediction); a file named on the command line is always tried, whatever its name.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})


@dataclass(frozen=True)
class Item:
    path: str  # the photo on disk
    file: str  # how the outputs name it: as given, or as the detections file names it
    detection: int | None = None  # the detection's index in the detections file's list for this photo
    bbox: tuple[float, float, float, float] | None = None  # normalized [x_min, y_min, width, height]
    conf: float | None = None  # the detector's confidence
    category: str | None = None  # the detector's category name
    not_classified: str = ""  # why there is nothing to classify (e.g. no detection >= 0.2)


@dataclass(frozen=True)
class DetectionOptions:
    """Which detections are classified; None: what the run's crops were cut with (else 0.2 and animal,
    MegaDetector v5's usual threshold and `shard --detections`' defaults)."""

    min_conf: float | None = None
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.min_conf is not None and not 0 <= self.min_conf <= 1:
            raise UserError(f"--min-detection-conf {self.min_conf}: must be between 0 and 1")

    def resolved(self, crops: dict) -> "DetectionOptions":
        trained = crops if crops.get("mode") == "detections" else {}
        return DetectionOptions(
            self.min_conf if self.min_conf is not None else float(trained.get("min_conf", DEFAULT_MIN_CONF)),
            self.categories if self.categories is not None else tuple(trained.get("categories", ("animal",))))


def photo_items(paths: list[Path]) -> tuple[list[Item], int, int]:
    """(an item per photo: files as given plus every non-hidden image file below a folder; how many non-image
    files were skipped; how many photos were given more than once, e.g. by a folder and by name: each is
    listed once, where first given)."""
    photos = []
    skipped = 0
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and not any(
                    part.startswith(".") for part in p.relative_to(path).parts)):
                if found.suffix.lower() in IMAGE_SUFFIXES:
                    photos.append(found)
                else:
                    skipped += 1
        else:
            photos.append(path)  # a missing file is reported as such when it is read
    if not photos:
        raise UserError(f"no image files to classify in {', '.join(map(str, paths))}"
                        + (f" ({skipped} other files skipped)" if skipped else ""))
    # One item per photo on disk: a photo is decoded once and each of its items gets a result.
    keys = [os.path.realpath(photo) for photo in photos]
    first: dict[str, Path] = {}  # the same photo on disk -> as it was first given, in that order
    for key, photo in zip(keys, photos):
        first.setdefault(key, photo)
    repeated = sum(1 for count in Counter(keys).values() if count > 1)
    return [Item(str(photo), str(photo)) for photo in first.values()], skipped, repeated


def detection_items(detections_path: Path, root: Path, options: DetectionOptions,
                    empty_class: str | None = None) -> list[Item]:
    """An item per qualifying detection of every image the MegaDetector file lists (paths relative to `root`,
    the folder the detector ran on; the same selection rule as `shard --detections`). An image with none
    is one unclassified item with the reason, except that a run trained with --empty-class classifies an
    image where the detector saw nothing at that confidence as a whole frame, as its blank class was taught."""
    from camtrap_fast.ingest.crop_plan import select_detections
    from camtrap_fast.ingest.megadetector import read_detections

    if not root.is_dir():
        raise UserError(f"{root}: with --detections, give the one folder the detector ran on (its files are "
                        "named relative to it)")
    detections = read_detections(detections_path)
    wanted = frozenset(detections.categories[i] for i in detections.category_ids(options.categories))
    items = []
    for entry in detections.images.values():
        path = os.path.join(root, entry.file.replace("\\", "/"))
        if entry.failure:
            items.append(Item(path, entry.file, not_classified=f"detector failure: {entry.failure}"))
            continue
        chosen = select_detections(entry, wanted, options.min_conf)
        if chosen:
            items.extend(Item(path, entry.file, box.index, box.bbox, box.conf, box.category) for box in chosen)
        elif empty_class is not None and not any(box.conf >= options.min_conf for box in entry.boxes):
            items.append(Item(path, entry.file))  # a whole frame: the blank class was learnt from these
        else:
            items.append(Item(path, entry.file, not_classified=f"no detection >= {options.min_conf:g}"))
    if not items:
        raise UserError(f"{detections_path}: lists no images")
    return items
