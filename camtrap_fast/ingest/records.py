"""What ingest hands to the shard stage: one `Record` per input image, or a `Rejection`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DETECTION = "detection"
ANNOTATION = "annotation"


@dataclass(frozen=True)
class Box:
    """A region to crop from an image: normalized [x_min, y_min, width, height] in the displayed frame
    (EXIF orientation applied), as MegaDetector and Camtrap DP give them."""

    bbox: tuple[float, float, float, float]
    index: int  # position among the image's detections or boxed annotations; makes the sample key
    origin: str = DETECTION  # DETECTION or ANNOTATION
    label: str | None = None  # an annotation box's own class; None: the image's label
    conf: float | None = None  # detector confidence
    category: str | None = None  # detector category name (animal, person, vehicle)

    def __post_init__(self) -> None:
        if len(self.bbox) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.bbox):
            raise ValueError(f"bbox {list(self.bbox)} is not four finite numbers [x_min, y_min, width, height]")
        x, y, w, h = self.bbox
        if w < 0 or h < 0:
            raise ValueError(f"bbox {list(self.bbox)} has a negative width or height")
        # A small tolerance: detectors round, and a box may touch the edge from outside by a hair.
        if x > 1 + 1e-3 or y > 1 + 1e-3 or x + w < -1e-3 or y + h < -1e-3:
            raise ValueError(f"bbox {list(self.bbox)} lies outside the image (coordinates are fractions 0-1)")
        object.__setattr__(self, "bbox", tuple(float(v) for v in self.bbox))

    def metadata(self) -> dict:
        """What a crop sample's `json` member says about where it came from."""
        meta = {"from": self.origin, "index": self.index, "bbox": [round(v, 6) for v in self.bbox]}
        for name in ("conf", "category"):
            if getattr(self, name) is not None:
                meta[name] = getattr(self, name)
        return meta

# Why an input image did not reach a shard; rejected.csv uses exactly these words.
MISSING_FILE = "missing file"
NOT_AN_IMAGE = "not an image"
TRUNCATED = "truncated"
UNREADABLE = "unreadable"
UNLABELLED = "unlabelled"
DUPLICATE = "duplicate entry"
DROPPED_CLASS = "dropped class"
MULTI_SPECIES = "multi-species"
KEPT_FRACTION = "kept-fraction"
# Crops (`shard --detections`, `--crops annotations`) and remote sources (Camtrap DP media URLs):
NO_DETECTION = "no detection"  # no detection of the wanted categories at or above --min-detection-conf
NOT_IN_DETECTIONS = "not in detections file"
DETECTOR_FAILURE = "detector failure"  # the detections file's own `failure` text is the detail
NO_BOX = "no box"  # --crops annotations: the image's label has no box to crop
REMOTE_MEDIA = "remote media (not downloaded)"  # --remote-media skip, or a scheme other than http(s)
DOWNLOAD_FAILED = "download failed"  # a remote image that kept failing without an HTTP status (timeouts, cut bodies)
NO_TRAINING_IMAGE = "no training image"  # its class has no image in train, so it has no output to be evaluated on
UNKNOWN_IMAGE_ID = "unknown image id"  # a COCO annotation naming an image the file does not list (not an image)


def http_status(code: int) -> str:
    """The rejection reason of a remote image whose server kept answering `code` (e.g. `HTTP 404`)."""
    return f"HTTP {code}"


@dataclass(frozen=True, slots=True)
class Record:
    """One labelled input image. `labels` holds every distinct class annotated on it (COCO may list several)."""

    path: str  # absolute path of the source image
    relpath: str  # path as the source names it, relative to its root where possible; used for the sample key
    label: str
    labels: tuple[str, ...] = ()
    location: str | None = None
    seq_id: str | None = None
    frame_num: int | None = None
    datetime: str | None = None
    split: str | None = None  # fixed by the source (CSV `split` column), else chosen by the splitter
    boxes: tuple[Box, ...] = ()  # regions to crop, one sample each; none: the whole frame is the sample

    def __post_init__(self) -> None:
        if not self.labels:
            object.__setattr__(self, "labels", (self.label,))

    def with_split(self, split: str) -> "Record":
        """This record in `split`: `dataclasses.replace` without its per-call cost (every record of millions)."""
        return Record(self.path, self.relpath, self.label, self.labels, self.location, self.seq_id, self.frame_num,
                      self.datetime, split, self.boxes)

    def metadata(self) -> dict:
        """What the shard's `json` member carries besides the key: source path and capture facts when known."""
        meta = {"source": self.relpath}
        for name in ("location", "seq_id", "frame_num", "datetime"):
            value = getattr(self, name)
            if value is not None:
                meta[name] = value
        return meta


@dataclass(frozen=True, slots=True)
class Rejection:
    path: str
    reason: str
    detail: str = field(default="")
