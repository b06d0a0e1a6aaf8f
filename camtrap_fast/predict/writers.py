"""Predictions -> the files camera-trap tools read: CSV (a spreadsheet), MegaDetector JSON (Timelapse,
AddaxAI), Camtrap DP observations (Agouti, camtraptor, GBIF).

- csv: one row per photo or detection: file, detection index, detector confidence, bbox, then the top-k
  classes and probabilities as separate columns (class names with commas or semicolons stay parseable),
  the sequence and its pooled prediction, and why a row could not be classified.
- md-json: the input MegaDetector file with everything kept, `classification_categories` (id -> class)
  replacing an earlier classifier's (whose `classification_category_descriptions` and
  `info.classifier_metadata` are dropped), and each classified detection given `classifications`:
  [[id, probability], ...], top-k, best first, as MegaDetector's own classifiers and SpeciesNet's
  converter write them. Images also get `seq_id` and `sequence_classifications` when sequences were pooled.
- camtrap-dp: a folder with `observations.csv` (Camtrap DP 1.0 columns; classificationMethod machine)
  and a minimal `datapackage.json` that lists it. Media-level rows per classified photo or detection;
  with sequences, one event-level row per sequence too.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camtrap_fast import __version__
from camtrap_fast.atomic import open_atomic, write_text
from camtrap_fast.errors import UserError
from camtrap_fast.predict.classify import Classified
from camtrap_fast.predict.formats import FORMATS, choose_format  # noqa: F401 (writers.choose_format)

CAMTRAP_DP_PROFILE = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json"
OBSERVATIONS_SCHEMA = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/observations-table-schema.json"
OBSERVATION_COLUMNS = (
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd", "observationLevel",
    "observationType", "cameraSetupType", "scientificName", "count", "lifeStage", "sex", "behavior",
    "individualID", "individualPositionRadius", "individualPositionAngle", "individualSpeed", "bboxX", "bboxY",
    "bboxWidth", "bboxHeight", "classificationMethod", "classifiedBy", "classificationTimestamp",
    "classificationProbability", "observationTags", "observationComments")
# Class names that are Camtrap DP observation types rather than taxa (as `shard` reads them back).
OBSERVATION_TYPES = {"blank", "empty", "human", "person", "vehicle", "unknown", "unclassified"}
_TYPE_OF = {"empty": "blank", "person": "human", "unclassified": "unclassified"}
PACKAGE_NAME = "camtrap-fast-predictions"  # how our datapackage.json tells itself from a user's own package


def camtrap_dp_folder(out: Path) -> Path:
    """The folder a Camtrap DP output goes to: --out itself, or the folder of --out .../datapackage.json."""
    return out.parent if out.name == "datapackage.json" else out


def check_camtrap_dp_target(out: Path) -> None:
    """Raise the UserError `write_camtrap_dp` would raise, before any photo is classified.

    Only our own earlier output may be replaced: a folder holding a datapackage.json that is not ours, or an
    observations.csv without ours beside it, is the user's (their own Camtrap DP package) and is refused."""
    folder = camtrap_dp_folder(out)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: --format camtrap-dp writes a folder (observations.csv, datapackage.json); "
                        "name a folder")
    package, observations = folder / "datapackage.json", folder / "observations.csv"
    if os.path.lexists(package):
        if not _ours(package):
            raise UserError(f"{package}: a Camtrap DP package not written by camtrap-fast predict; it is kept: "
                            "choose another --out")
    elif os.path.lexists(observations):
        raise UserError(f"{observations}: not written by camtrap-fast predict (no datapackage.json of ours beside "
                        "it); it is kept: choose another --out")


def _ours(package: Path) -> bool:
    try:
        data = json.loads(package.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("name") == PACKAGE_NAME


def top(probs: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(class index, probability), the k most probable, best first (ties: lower index first)."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(c), float(probs[c])) for c in order]


def write_csv(out: Path, results: Sequence[Classified], classes: Sequence[str], k: int,
              sequence_ids: Sequence[str] | None = None, pooled: dict | None = None) -> None:
    header = ["file", "detection", "detection_conf", "bbox_x", "bbox_y", "bbox_width", "bbox_height"]
    for rank in range(1, k + 1):
        header += [f"class_{rank}", f"probability_{rank}"]
    if sequence_ids is not None:
        header += ["sequence", "sequence_class", "sequence_probability"]
    header.append("error")
    with open_atomic(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for n, result in enumerate(results):
            item = result.item
            row = [item.file, "" if item.detection is None else item.detection, _number(item.conf)]
            row += [_number(v) for v in item.bbox] if item.bbox is not None else [""] * 4
            ranked = top(result.probs, k) if result.probs is not None else []
            for rank in range(k):
                row += [classes[ranked[rank][0]], f"{ranked[rank][1]:.4f}"] if rank < len(ranked) else ["", ""]
            if sequence_ids is not None:
                seq = sequence_ids[n]
                best = top(pooled[seq], 1)[0] if seq in pooled else None
                row += [seq, classes[best[0]] if best else "", f"{best[1]:.4f}" if best else ""]
            row.append(result.error)
            writer.writerow(row)


def write_md_json(out: Path, detections_path: Path, results: Sequence[Classified], classes: Sequence[str], k: int,
                  run: Path, sequence_ids: Sequence[str] | None = None, pooled: dict | None = None) -> None:
    """The detections file with classifications added; nothing else of it changes."""
    from camtrap_fast.ingest.megadetector import join_key

    data = json.loads(Path(detections_path).read_text(encoding="utf-8"))
    by_detection = {(join_key(r.item.file), r.item.detection): r for r in results if r.item.detection is not None}
    sequence_of = {}
    if sequence_ids is not None:
        sequence_of = {join_key(r.item.file): seq for r, seq in zip(results, sequence_ids)}
    for image in data["images"]:
        key = join_key(image["file"])
        for index, detection in enumerate(image.get("detections") or []):
            result = by_detection.get((key, index))
            if result is not None and result.probs is not None:
                detection["classifications"] = [[str(c), round(p, 4)] for c, p in top(result.probs, k)]
            else:
                detection.pop("classifications", None)  # the input's classes are not ours: never mix the two
        seq = sequence_of.get(key)
        if seq is not None:
            image["seq_id"] = seq
            if seq in pooled:
                image["sequence_classifications"] = [[str(c), round(p, 4)] for c, p in top(pooled[seq], k)]
    data["classification_categories"] = {str(i): name for i, name in enumerate(classes)}
    # Another classifier's descriptions (taxonomy strings) and metadata describe its ids, not ours: a reader
    # (Timelapse) would show them for our classes.
    data.pop("classification_category_descriptions", None)
    info = data.setdefault("info", {})
    info.pop("classifier_metadata", None)
    info["classifier"] = f"camtrap-fast {__version__} ({run})"
    info["classification_completion_time"] = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    write_text(out, json.dumps(data, indent=1) + "\n")


@dataclass(frozen=True)
class CamtrapDpWritten:
    observations: Path
    # Classified photos without a capture time (no package timestamp, no EXIF DateTimeOriginal): their rows'
    # eventStart and eventEnd are empty, which the Camtrap DP schema requires. Nothing is invented for them (a file's
    # modification time is when it was copied, not when it was taken); the caller says so in one line.
    untimed_photos: int


def write_camtrap_dp(out: Path, results: Sequence[Classified], classes: Sequence[str], run: Path,
                     sequence_ids: Sequence[str] | None = None, pooled: dict | None = None,
                     media: dict | None = None) -> CamtrapDpWritten:
    """observations.csv + datapackage.json in the folder `out` (or beside `out` = .../datapackage.json).

    media: absolute photo path -> the Camtrap DP package's own facts (ingest.camtrap_dp.media_facts), when the
    photos are a package's media: rows then name its mediaID, deploymentID and timestamps. Otherwise the
    photo's path is the mediaID, its folder the deploymentID, and its EXIF time the timestamp."""
    from camtrap_fast.predict.sequences import capture_time

    check_camtrap_dp_target(out)
    out = camtrap_dp_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    classified_by = f"camtrap-fast {__version__} ({run})"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    media = media or {}
    facts = {r.item.path: media.get(os.path.abspath(r.item.path)) for r in results}
    times = {path: (fact.timestamp if fact is not None else _timestamp(capture_time(path)))
             for path, fact in facts.items()}
    rows = []
    for n, result in enumerate(results):
        if result.probs is None:
            continue
        item = result.item
        best, probability = top(result.probs, 1)[0]
        when = times[item.path]
        fact = facts[item.path]
        media_id = fact.media_id if fact is not None else item.file
        deployment = fact.deployment_id if fact is not None else (os.path.dirname(item.file) or ".")
        row = {"observationID": f"{media_id}#{item.detection if item.detection is not None else 0}",
               "deploymentID": deployment, "mediaID": media_id,
               "eventID": sequence_ids[n] if sequence_ids is not None else "", "eventStart": when, "eventEnd": when,
               "observationLevel": "media", "classificationMethod": "machine", "classifiedBy": classified_by,
               "classificationTimestamp": stamp, "classificationProbability": f"{probability:.4f}", "count": "1",
               **_what(classes[best])}
        if item.bbox is not None:
            row.update(zip(("bboxX", "bboxY", "bboxWidth", "bboxHeight"), (_number(v) for v in item.bbox)))
        rows.append(row)
    if sequence_ids is not None:
        rows += _event_rows(results, sequence_ids, pooled, classes, times, facts, classified_by, stamp)
    observations = out / "observations.csv"
    with open_atomic(observations, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=OBSERVATION_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)
    write_text(out / "datapackage.json", json.dumps({
        "profile": CAMTRAP_DP_PROFILE,
        "name": PACKAGE_NAME,
        "created": stamp,
        "description": f"Machine classifications by {classified_by}. Observations only: the deployments and "
                       "media of the photos are not described here (join on mediaID = the photo's path).",
        "contributors": [{"title": f"camtrap-fast {__version__}", "role": "contributor"}],
        "resources": [{"name": "observations", "path": "observations.csv", "profile": "tabular-data-resource",
                       "format": "csv", "mediatype": "text/csv", "encoding": "utf-8", "schema": OBSERVATIONS_SCHEMA}],
    }, indent=1) + "\n")
    untimed = {r.item.path for r in results if r.probs is not None and not times[r.item.path]}
    return CamtrapDpWritten(observations, len(untimed))


def _event_rows(results, sequence_ids, pooled, classes, times, facts, classified_by, stamp) -> list[dict]:
    members: dict[str, list] = {}
    for result, seq in zip(results, sequence_ids):
        members.setdefault(seq, []).append(result)
    rows = []
    for seq, group in members.items():
        if seq not in pooled:
            continue
        best, probability = top(pooled[seq], 1)[0]
        known = sorted(t for t in (times[r.item.path] for r in group) if t)
        first = facts[group[0].item.path]
        deployment = first.deployment_id if first is not None else (os.path.dirname(group[0].item.file) or ".")
        rows.append({"observationID": f"{seq}#event", "deploymentID": deployment,
                     "eventID": seq, "eventStart": known[0] if known else "",
                     "eventEnd": known[-1] if known else "", "observationLevel": "event",
                     "classificationMethod": "machine", "classifiedBy": classified_by,
                     "classificationTimestamp": stamp, "classificationProbability": f"{probability:.4f}",
                     **_what(classes[best])})
    return rows


def _what(name: str) -> dict:
    """observationType (and scientificName for animals) for one of our class names."""
    if name.lower() in OBSERVATION_TYPES:
        return {"observationType": _TYPE_OF.get(name.lower(), name.lower())}
    return {"observationType": "animal", "scientificName": name}


def _timestamp(when: dt.datetime | None) -> str:
    # EXIF capture times are camera-local without a zone; written as they are (no offset invented).
    return when.isoformat() if when is not None else ""


def _number(value) -> str:
    return "" if value is None else f"{value:.6g}"
