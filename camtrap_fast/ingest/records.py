"""What ingest hands to the shard stage: one `Record` per input image, or a `Rejection`."""

from __future__ import annotations

from dataclasses import dataclass, field

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
NO_TRAINING_IMAGE = "no training image"  # its class has no image in train, so it has no output to be evaluated on
UNKNOWN_IMAGE_ID = "unknown image id"  # a COCO annotation naming an image the file does not list (not an image)


@dataclass(frozen=True)
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

    def __post_init__(self) -> None:
        if not self.labels:
            object.__setattr__(self, "labels", (self.label,))

    def metadata(self) -> dict:
        """What the shard's `json` member carries besides the key: source path and capture facts when known."""
        meta = {"source": self.relpath}
        for name in ("location", "seq_id", "frame_num", "datetime"):
            value = getattr(self, name)
            if value is not None:
                meta[name] = value
        return meta


@dataclass(frozen=True)
class Rejection:
    path: str
    reason: str
    detail: str = field(default="")
