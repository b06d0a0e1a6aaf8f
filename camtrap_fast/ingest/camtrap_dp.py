"""Camtrap DP 1.0, the TDWG camera-trap data standard: datapackage.json with deployments, media, observations.

One record per row of media.csv. How a media file gets its label:

* An observation's class is its `scientificName`, except that observationType blank, human, vehicle
  and unknown give that word (so `--drop-classes blank,human` works as with COCO, and "Homo sapiens"
  is "human"); an animal without a name is "animal"; `unclassified` is no label at all.
* Media-level observations (observationLevel=media, mediaID set) label their media. Event-level
  ones label every media of their deployment whose timestamp lies in [eventStart, eventEnd] -- but
  only media without media-level labels of their own: the media-level ones are the finer truth
  (in the standard's own example, 53 frames inside animal events are media-level blank: the
  animal had left the frame). Media timestamps carry their UTC offset and events are given in UTC;
  both are compared as aware datetimes, so the offset is honoured.
* Several classes on one media follow the multi-species rule: most observations first (ties: first
  seen), the first is the label.

`deploymentID` is the location; the media's `eventID` (or the event that covers it) is the sequence.
`filePath` relative to the package folder is read from there; a URL is looked up by `fileName` under
--image-root (as DEPLOYMENT/FILE or FILE) and is otherwise left as a URL, which the shard step
rejects as remote media. Media-level observations with bboxX/Y/Width/Height (normalized, top left)
are the boxes `--crops annotations` cuts.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.ingest.records import ANNOTATION, Box, Record
from camtrap_fast.ingest.remote import is_url

PACKAGE_FILE = "datapackage.json"
RESOURCES = ("deployments", "media", "observations")
_OWN_WORD = {"blank", "human", "vehicle", "unknown"}  # observationType values that are the class themselves
_BBOX = ("bboxX", "bboxY", "bboxWidth", "bboxHeight")


def is_camtrap_dp(source: Path) -> bool:
    """A folder holding datapackage.json, or a datapackage.json itself."""
    return (source / PACKAGE_FILE).is_file() if source.is_dir() else source.name == PACKAGE_FILE


def load_camtrap_dp(source: Path, image_root: Path | None) -> list[Record]:
    return [record for record, _ in _read_package(source, image_root)]


def camtrap_dp_boxes(source: Path, image_root: Path | None) -> dict[str, tuple[Box, ...]]:
    """The media-level observations' boxes per media, keyed by the record's relpath."""
    return {record.relpath: boxes for record, boxes in _read_package(source, image_root) if boxes}


@dataclass(frozen=True)
class _Event:
    start: datetime
    end: datetime
    label: str
    event_id: str | None


def _read_package(source: Path, image_root: Path | None) -> list[tuple[Record, tuple[Box, ...]]]:
    folder, tables = _tables(source)
    deployments = {row["deploymentID"]: row for _, row in _read_table(tables["deployments"], ("deploymentID",))}
    media = _read_table(tables["media"], ("mediaID", "deploymentID", "timestamp", "filePath"))
    observations = _read_table(tables["observations"], ("observationID", "deploymentID", "observationLevel",
                                                        "observationType"))
    media_ids = {row["mediaID"] for _, row in media}
    per_media: dict[str, list[tuple[str, str | None, tuple[float, ...] | None]]] = {}
    events: dict[str, list[_Event]] = {}
    obs_file = tables["observations"]
    for line, row in observations:
        label, level = _label(row), row["observationLevel"].strip().lower()
        if level == "media":
            if row.get("mediaID", "") not in media_ids:
                raise UserError(f"{obs_file}:{line}: media-level observation {row['observationID']} names mediaID "
                                f"'{row.get('mediaID', '')}', which is not in {tables['media'].name}")
            own = (label, row.get("eventID") or None, _bbox(row, obs_file, line))
            per_media.setdefault(row["mediaID"], []).append(own)
        elif level == "event":
            start, end = (_time(row.get(name, ""), obs_file, line, name) for name in ("eventStart", "eventEnd"))
            if end < start:
                raise UserError(f"{obs_file}:{line}: eventEnd {row['eventEnd']} is before eventStart {row['eventStart']}")
            events.setdefault(row["deploymentID"], []).append(_Event(start, end, label, row.get("eventID") or None))
        else:
            raise UserError(f"{obs_file}:{line}: observationLevel '{row['observationLevel']}' is not media or event")

    timelines = {deployment: _Timeline(found) for deployment, found in events.items()}
    out = []
    for line, row in media:
        if row["deploymentID"] not in deployments:
            raise UserError(f"{tables['media']}:{line}: deploymentID '{row['deploymentID']}' is not in "
                            f"{tables['deployments'].name}")
        own = per_media.get(row["mediaID"], [])
        covering = []
        if row["deploymentID"] in timelines:
            taken = _time(row["timestamp"], tables["media"], line, "timestamp")
            covering = timelines[row["deploymentID"]].covering(taken)
        labels = [label for label, _, _ in own if label] or [e.label for e in covering if e.label]
        event_ids = [e for _, e, _ in own if e] or [e.event_id for e in covering if e.event_id]
        votes = Counter(labels)
        ranked = tuple(sorted(votes, key=lambda name: (-votes[name], labels.index(name))))
        path, relpath = _locate(row, folder, image_root)
        record = Record(path=path, relpath=relpath, label=ranked[0] if ranked else "", labels=ranked or ("",),
                        location=row["deploymentID"], seq_id=event_ids[0] if event_ids else None,
                        datetime=row["timestamp"] or None)
        boxed = [(label, bbox) for label, _, bbox in own if bbox is not None and label]
        out.append((record, tuple(Box(bbox, i, ANNOTATION, label=label) for i, (label, bbox) in enumerate(boxed))))
    return out


class _Timeline:
    """One deployment's events by start time, to find those covering a moment without scanning them all."""

    def __init__(self, events: list[_Event]):
        self.events = sorted(events, key=lambda e: e.start)  # stable: equal starts keep file order
        self.starts = [e.start for e in self.events]
        self.longest = max(e.end - e.start for e in self.events)

    def covering(self, moment: datetime) -> list[_Event]:
        """Events with start <= moment <= end, earliest start first."""
        first = bisect.bisect_left(self.starts, moment - self.longest)
        last = bisect.bisect_right(self.starts, moment)
        return [e for e in self.events[first:last] if e.end >= moment]


def _label(row: dict) -> str:
    kind = row["observationType"].strip().lower()
    name = row.get("scientificName", "").strip()
    if kind in _OWN_WORD:
        return kind
    if kind == "unclassified":
        return ""
    return name or kind


def _bbox(row: dict, path: Path, line: int) -> tuple[float, ...] | None:
    given = [row.get(name, "") for name in _BBOX]
    if not any(given):
        return None
    try:
        bbox = tuple(float(v) for v in given)
        Box(bbox, 0)  # validates: finite, non-negative size, inside the image
    except ValueError as error:
        detail = str(error) if all(given) else "some of bboxX, bboxY, bboxWidth, bboxHeight are empty"
        raise UserError(f"{path}:{line}: bad box ({detail})") from None
    return bbox


def _time(text: str, path: Path, line: int, column: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"{path}:{line}: {column} '{text}' is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise UserError(f"{path}:{line}: {column} '{text}' has no UTC offset (Camtrap DP needs one, e.g. "
                        "2020-05-30T04:57:37+02:00), so it cannot be matched to events")
    return value


@dataclass(frozen=True)
class MediaFacts:
    media_id: str
    deployment_id: str
    timestamp: str  # as media.csv gives it: ISO 8601 with its UTC offset


def media_facts(source: Path, image_root: Path | None = None) -> dict[str, MediaFacts]:
    """Absolute path of every local media file of a package -> its mediaID, deploymentID and timestamp, so
    predictions written back as Camtrap DP observations name the package's own media."""
    folder, tables = _tables(source)
    media = _read_table(tables["media"], ("mediaID", "deploymentID", "timestamp", "filePath"))
    facts = {}
    for _, row in media:
        path, _ = _locate(row, folder, image_root)
        if not is_url(path):
            facts[os.path.abspath(path)] = MediaFacts(row["mediaID"], row["deploymentID"], row["timestamp"])
    return facts


def _locate(row: dict, folder: Path, image_root: Path | None) -> tuple[str, str]:
    """(path, relpath) of a media file: local, found under --image-root, or the URL itself (rejected later)."""
    file_path = row["filePath"].strip()
    if not is_url(file_path):
        path = Path(file_path)
        return os.path.abspath(path if path.is_absolute() else folder / path), path.as_posix()
    name = row.get("fileName", "").strip()
    if image_root is not None and name and "/" not in name and name not in (".", ".."):
        for relative in (Path(row["deploymentID"]) / name, Path(name)):
            if (image_root / relative).is_file():
                return os.path.abspath(image_root / relative), relative.as_posix()
    return file_path, file_path


def _tables(source: Path) -> tuple[Path, dict[str, Path]]:
    package = source / PACKAGE_FILE if source.is_dir() else source
    try:
        data = json.loads(package.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{package}: not found (a Camtrap DP package needs its datapackage.json)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{package}: not a readable JSON file ({error})") from None
    resources = data.get("resources") if isinstance(data, dict) else None
    if not isinstance(resources, list):
        raise UserError(f"{package}: no 'resources' list; is this a Camtrap DP datapackage.json?")
    paths = {}
    for resource in resources:
        if isinstance(resource, dict) and resource.get("name") in RESOURCES:
            where = resource.get("path")
            if not isinstance(where, str) or is_url(where):
                raise UserError(f"{package}: resource '{resource['name']}' must have a local 'path' "
                                f"(got {where!r}); download the table next to datapackage.json")
            paths[resource["name"]] = package.parent / where
    missing = [name for name in RESOURCES if name not in paths]
    if missing:
        raise UserError(f"{package}: no {', '.join(missing)} resource; Camtrap DP needs deployments, media "
                        "and observations")
    return package.parent, paths


def _read_table(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in required if c not in columns]
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(columns) or 'none'})")
            rows = []
            for row in reader:  # line_num: where the row ends, right even after a quoted line break
                rows.append((reader.line_num, {(k or "").strip(): (v or "").strip() for k, v in row.items()
                                               if isinstance(v, str) or v is None}))
    except FileNotFoundError:
        raise UserError(f"{path}: not found (named by datapackage.json)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text CSV") from None
    except csv.Error as error:
        raise UserError(f"{path}: malformed CSV ({error})") from None
    for line, row in rows:
        for column in required:
            if not row.get(column):
                raise UserError(f"{path}:{line}: empty {column}")
    return rows
