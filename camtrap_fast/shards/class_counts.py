"""Class counts read from a file: `{class: count}` JSON, the `{"train": {class: count}}` form of season 9's,
or a shard directory's `manifest.json` (its train split, checked like any manifest)."""

from __future__ import annotations

import json
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.shards.manifest import FORMAT, MANIFEST_FILE, OLD_FORMATS, load_manifest

EXPECTED = ('expected a JSON object {class: count}, {"train": {class: count}}, '
            "or a shard directory's manifest.json")


def read_class_counts(path: Path) -> dict[str, int]:
    """{class: count} from a counts JSON file, a shard directory or its manifest.json (train split)."""
    path = Path(path)
    if path.is_dir() or path.name == MANIFEST_FILE:
        return _manifest_counts(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such class-counts file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: cannot read JSON class counts ({error}); {EXPECTED}") from None
    if isinstance(data, dict) and (data.get("format") == FORMAT or data.get("format") in OLD_FORMATS):
        return _manifest_counts(path)  # a manifest under another name
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        data = data["train"]
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: {EXPECTED}")
    for name, count in data.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise UserError(f"{path}: class {name!r} has count {_short(count)}; counts must be whole numbers "
                            f">= 0 ({EXPECTED})")
    return data


def _manifest_counts(path: Path) -> dict[str, int]:
    manifest = load_manifest(path)
    train = manifest.splits.get("train")
    if train is None or train.samples == 0:
        raise UserError(f"{manifest.root}: the shard directory has no train split to count classes in")
    return {name: int(train.class_counts.get(name, 0)) for name in manifest.classes}


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
