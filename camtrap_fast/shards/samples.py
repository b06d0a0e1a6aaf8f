"""Images -> samples: one whole frame, or one crop per box; their keys, labels and `json` fields.

The shard builder works image by image (the unit of accounting and resumption); this is where an
image's record and its encoded result become the samples written to the tar.
"""

from __future__ import annotations

import hashlib

from camtrap_fast.ingest.crop_plan import CropConfig
from camtrap_fast.ingest.records import DETECTION, Record
from camtrap_fast.shards.crops import EncodedCrop, encode_crops
from camtrap_fast.shards.encode import EncodeConfig, encode_image
from camtrap_fast.shards.keys import make_keys


def encode_sample(task: tuple, config: EncodeConfig) -> bytes | list[EncodedCrop]:
    """A worker's job: the whole frame's JPEG, or one crop per box; raises EncodeRejected. A task is
    (path, boxes), or (path, boxes, bytes) for a fetched remote image."""
    path, bboxes, *data = task
    image = data[0] if data else path
    return encode_crops(image, bboxes, config) if bboxes else encode_image(image, config)


def encode_task(record: Record) -> tuple[str, tuple]:
    """What a worker needs: the path, and the boxes to cut (none: the whole frame)."""
    return record.path, tuple(box.bbox for box in record.boxes)


def plan_samples(records: list[Record]) -> tuple[tuple[str, ...], dict[str, list[str]], dict[str, tuple[str, str]]]:
    """The classes (of the samples, which for annotation crops are the boxes' own), each image's sample keys,
    and each sample key's (sequence id, source relpath) for the sample index."""
    classes = tuple(sorted({box.label or r.label for r in records for box in r.boxes}
                           | {r.label for r in records if not r.boxes}))
    per_record = _key_lists(records)
    keys = {r.path: own for r, own in zip(records, per_record)}
    facts = {key: (r.seq_id or "", r.relpath) for r, own in zip(records, per_record) for key in own}
    return classes, keys, facts


def sample_keys(records: list[Record]) -> dict[str, list[str]]:
    """Keys per image: its own for a whole frame; `KEY_d3` for its detection 3, `KEY_a0` for annotation box 0.

    Suffixes name the box's place in its source (not among the boxes kept), so a detection keeps its key
    whatever the confidence threshold, and predictions join back to the detections file by it.
    """
    return {r.path: own for r, own in zip(records, _key_lists(records))}


def _key_lists(records: list[Record]) -> list[list[str]]:
    """Each record's sample keys, in record order."""
    if not any(r.boxes for r in records):  # whole frames, the usual case: one key per image, no suffixes
        return [[key] for key in make_keys([r.relpath for r in records])]
    names = []
    for record in records:
        names += [(record.relpath, f"_{'d' if b.origin == DETECTION else 'a'}{b.index}") for b in record.boxes] \
            or [(record.relpath, "")]
    keys = iter(make_keys([n for n, _ in names], [suffix for _, suffix in names]))
    return [[next(keys) for _ in (r.boxes or (None,))] for r in records]


def samples(record: Record, keys: list[str], result):
    """(key, class name, JPEG, extra json fields) for each sample an encoded image gives."""
    if isinstance(result, bytes):
        yield keys[0], record.label, result, None
        return
    for key, box, crop in zip(keys, record.boxes, result):
        assert isinstance(crop, EncodedCrop)
        extra = {"crop": {**box.metadata(), "window": list(crop.window), "frame": list(crop.frame)}}
        if box.label:
            extra["label"] = box.label
        yield key, box.label or record.label, crop.jpeg, extra


def crops_manifest(crops: CropConfig, encode: EncodeConfig) -> dict:
    """What the manifest records about how crops were cut (empty for whole frames)."""
    if crops.mode == "none":
        return {}
    out = {"mode": crops.mode, "padding": encode.crop_padding, "empty_class": crops.empty_class}
    if crops.mode == "detections":
        out |= {"detections": str(crops.detections), "min_conf": crops.min_conf, "categories": list(crops.categories)}
    return out


def crop_fingerprint(fingerprint: str, crop_digest: str, encode: EncodeConfig) -> str:
    """The shard fingerprint with what decided the crops folded in; unchanged for whole frames (no digest)."""
    if not crop_digest:
        return fingerprint
    return hashlib.sha256(f"{fingerprint}:{crop_digest}:{encode.crop_padding!r}".encode()).hexdigest()[:32]
