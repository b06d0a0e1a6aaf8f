"""`manifest.json`: what a shard directory holds, written last so its presence means "complete".

The manifest carries a checksum of each field that describes the data (`checksums`: the first 16
hex digits of the SHA-256 of the field's JSON), so an edited or damaged manifest is a one-line
Fault naming the field rather than a plan made from wrong counts or a model with the wrong number of
outputs. A split's index is checked against the manifest when it is loaded (sample count, shard
list, per-class counts): cheap (one bincount), and it catches a stale or swapped index.npz.
Manifests of format /1 (before checksums) still load, with a warning, rather than forcing a
reshard of data that is intact: `camtrap-fast verify` checks them against their shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from camtrap_fast.atomic import write_text
from camtrap_fast.errors import Fault, UserError
from camtrap_fast.shards.sample_index import INDEX_FILE, SampleIndex

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
FORMAT = "camtrap-fast-shards/2"  # /2: field checksums in the manifest, per-sample CRC-32 in index.npz
OLD_FORMATS = ("camtrap-fast-shards/1",)
SPLITS = ("train", "val", "test")
# What the checksums cover: every field that describes the data. `command` and `versions` are a record
# of how it was made, and editing them changes nothing read.
CHECKED_FIELDS = ("classes", "image_size", "quality", "fingerprint", "rejected", "small_classes", "dropped_classes",
                  "crops")
SPLIT_FIELDS = ("samples", "class_counts", "shards")
_warned: set[str] = set()
FIX = "undo the edit, or shard again with --overwrite"


@dataclass(frozen=True)
class SplitInfo:
    samples: int
    class_counts: dict[str, int]  # every class, in class-index order, zeros included
    shards: tuple[str, ...]  # paths relative to the shard directory


@dataclass(frozen=True)
class Manifest:
    classes: tuple[str, ...]
    splits: dict[str, SplitInfo]
    image_size: int
    quality: int
    fingerprint: str  # hash of the inputs and every option that changes the bytes written
    rejected: int
    small_classes: dict[str, list[str]] = field(default_factory=dict)  # class -> splits it is missing from
    dropped_classes: dict[str, str] = field(default_factory=dict)  # class -> why it has no output (trainable.py)
    command: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    root: Path = field(default=Path("."), compare=False)
    # How samples were cut when they are crops (mode, padding, min_conf, categories, empty_class, detections);
    # empty for whole frames. Prediction on detector output reads the padding from here.
    crops: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; expected {SPLITS}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def shard_paths(self, split: str) -> list[Path]:
        return [self.root / s for s in self._split(split).shards]

    def index_path(self, split: str) -> Path:
        return self.root / split / INDEX_FILE

    def load_index(self, split: str) -> SampleIndex:
        """The split's index, checked against this manifest (a Fault naming both files when they disagree)."""
        info = self._split(split)
        path = self.index_path(split)
        index = SampleIndex.load(path)
        problem = index_mismatch(index, info, self.classes)
        if problem:
            raise Fault(f"{path}: {problem} (the index and {MANIFEST_FILE} are not from one shard run); "
                        f"run `camtrap-fast verify {self.root}`, or shard again with --overwrite")
        return index

    def _split(self, split: str) -> SplitInfo:
        if split not in self.splits or self.splits[split].samples == 0:
            present = [s for s, info in self.splits.items() if info.samples]
            raise UserError(f"{self.root}: split '{split}' has no samples (present: {', '.join(present) or 'none'})")
        return self.splits[split]

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("root")
        data = {"format": FORMAT, **data}
        data["checksums"] = checksums(json.loads(json.dumps(data)))  # of the values as a reader will see them
        return json.dumps(data, indent=1, sort_keys=False) + "\n"

    def save(self) -> None:
        write_text(self.root / MANIFEST_FILE, self.to_json())


def checksums(data: dict) -> dict[str, str]:
    """{field: digest} of the data-describing fields of a manifest's JSON object; splits field by field."""
    fields = {name: data.get(name) for name in CHECKED_FIELDS}
    for split, info in (data.get("splits") or {}).items():
        for part in SPLIT_FIELDS:
            fields[f"splits.{split}.{part}"] = info.get(part) if isinstance(info, dict) else info
    return {name: _digest(value) for name, value in fields.items()}


def _digest(value) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)  # key order kept: class-index order matters
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_manifest(shard_dir: str | os.PathLike) -> Manifest:
    """Read a finished shard directory's manifest: a UserError when there is none (or it is some other file),
    a Fault when it is damaged or edited, naming the field."""
    root = Path(shard_dir)
    path = root / MANIFEST_FILE if root.is_dir() or not root.suffix else root
    if path.name == MANIFEST_FILE:
        root = path.parent
    if not path.exists():
        raise UserError(f"{root}: no {MANIFEST_FILE} here; is this a finished `camtrap-fast shard` output?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise Fault(f"{path}: cannot read ({error.strerror or error})") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise Fault(f"{path}: damaged manifest (not valid JSON: {error}); shard again with --overwrite") from None
    format = data.get("format") if isinstance(data, dict) else None
    if format != FORMAT and format not in OLD_FORMATS:
        raise UserError(f"{path}: not a camtrap-fast manifest (format is {format!r}, not {FORMAT!r})")
    _check_fields(path, data, format)
    try:
        data.pop("format")
        data.pop("checksums", None)
        splits = {
            name: SplitInfo(samples=int(s["samples"]), class_counts=dict(s["class_counts"]), shards=tuple(s["shards"]))
            for name, s in data.pop("splits").items()
        }
        manifest = Manifest(
            classes=tuple(data.pop("classes")),
            splits=splits,
            image_size=int(data.pop("image_size")),
            quality=int(data.pop("quality")),
            fingerprint=str(data.pop("fingerprint")),
            rejected=int(data.pop("rejected")),
            small_classes=dict(data.pop("small_classes", {})),
            dropped_classes=dict(data.pop("dropped_classes", {})),
            command=tuple(data.pop("command", ())),
            versions=dict(data.pop("versions", {})),
            root=root,
            crops=dict(data.pop("crops", {})),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise Fault(f"{path}: damaged manifest ({type(error).__name__}: {error}); {FIX}") from None
    _check_consistent(path, manifest)
    return manifest


def _check_fields(path: Path, data: dict, format: str) -> None:
    stored = data.get("checksums")
    if format in OLD_FORMATS:
        if str(path) not in _warned:
            _warned.add(str(path))
            log.warning("%s: written by an older camtrap-fast (%s): no checksums, and samples are read unchecked; "
                        "`camtrap-fast verify` checks it against its shards; sharding into a new folder adds them",
                        path, format)
        return
    if not isinstance(stored, dict):
        raise Fault(f"{path}: the 'checksums' field is missing or damaged; {FIX}")
    current = checksums(data)
    for name in sorted(set(stored) | set(current), key=lambda n: (n.startswith("splits."), n)):
        if stored.get(name) != current.get(name):
            raise Fault(f"{path}: field '{name}' does not match its checksum (the file was edited or damaged); {FIX}")


def _check_consistent(path: Path, manifest: Manifest) -> None:
    """What must hold whatever the checksums say (format /1 has none): each split counts every class once."""
    if len(set(manifest.classes)) != len(manifest.classes):
        raise Fault(f"{path}: field 'classes' lists a class twice; {FIX}")
    for split, info in manifest.splits.items():
        if list(info.class_counts) != list(manifest.classes):
            raise Fault(f"{path}: field 'splits.{split}.class_counts' does not list the classes of 'classes'; {FIX}")
        if sum(info.class_counts.values()) != info.samples:
            raise Fault(f"{path}: field 'splits.{split}.samples' is {info.samples}, its class counts add up to "
                        f"{sum(info.class_counts.values())}; {FIX}")


def index_mismatch(index: SampleIndex, info: SplitInfo, classes: tuple[str, ...]) -> str | None:
    """What disagrees between a split's index and the manifest's account of that split, or None."""
    if len(index) != info.samples:
        return f"{len(index)} samples here, {info.samples} in {MANIFEST_FILE}"
    if tuple(index.shards) != tuple(info.shards):
        return f"lists other shards than {MANIFEST_FILE}"
    if len(index) and (int(index.labels.min()) < 0 or int(index.labels.max()) >= len(classes)):
        return f"holds class index {int(index.labels.max())}, but {MANIFEST_FILE} has {len(classes)} classes"
    counts = np.bincount(index.labels, minlength=len(classes))
    for name, here in zip(classes, counts.tolist()):
        if here != info.class_counts.get(name, 0):
            return f"class '{name}' has {here} samples here, {info.class_counts.get(name, 0)} in {MANIFEST_FILE}"
    return None
