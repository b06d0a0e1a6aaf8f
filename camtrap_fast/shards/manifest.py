"""`manifest.json`: what a shard directory holds, written last so its presence means "complete"."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from camtrap_fast.atomic import write_text
from camtrap_fast.errors import UserError
from camtrap_fast.shards.sample_index import INDEX_FILE, SampleIndex

MANIFEST_FILE = "manifest.json"
FORMAT = "camtrap-fast-shards/1"
SPLITS = ("train", "val", "test")


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
        self._split(split)
        return SampleIndex.load(self.index_path(split))

    def _split(self, split: str) -> SplitInfo:
        if split not in self.splits or self.splits[split].samples == 0:
            present = [s for s, info in self.splits.items() if info.samples]
            raise UserError(f"{self.root}: split '{split}' has no samples (present: {', '.join(present) or 'none'})")
        return self.splits[split]

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("root")
        data = {"format": FORMAT, **data}
        return json.dumps(data, indent=1, sort_keys=False) + "\n"

    def save(self) -> None:
        write_text(self.root / MANIFEST_FILE, self.to_json())


def load_manifest(shard_dir: str | os.PathLike) -> Manifest:
    """Read a finished shard directory's manifest; a one-line UserError when there is none."""
    root = Path(shard_dir)
    path = root / MANIFEST_FILE if root.is_dir() or not root.suffix else root
    if path.name == MANIFEST_FILE:
        root = path.parent
    if not path.exists():
        raise UserError(f"{root}: no {MANIFEST_FILE} here; is this a finished `camtrap-fast shard` output?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.pop("format", None) != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        splits = {
            name: SplitInfo(samples=int(s["samples"]), class_counts=dict(s["class_counts"]), shards=tuple(s["shards"]))
            for name, s in data.pop("splits").items()
        }
        return Manifest(
            classes=tuple(data.pop("classes")),
            splits=splits,
            image_size=int(data.pop("image_size")),
            quality=int(data.pop("quality")),
            fingerprint=str(data.pop("fingerprint")),
            rejected=int(data.pop("rejected")),
            small_classes=dict(data.pop("small_classes", {})),
            command=tuple(data.pop("command", ())),
            versions=dict(data.pop("versions", {})),
            root=root,
            crops=dict(data.pop("crops", {})),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path}: not a camtrap-fast manifest ({error})") from None
