"""Class counts read from a file: `{class: count}` JSON, or the `{"train": {class: count}}` form of season 9's."""

from __future__ import annotations

import json
from pathlib import Path

from camtrap_fast.errors import UserError


def read_class_counts(path: Path) -> dict[str, int]:
    """A JSON file of class counts: `{class: count}`, or `{"train": {class: count}, ...}` (e.g. season 9's)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such class-counts file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: cannot read JSON class counts ({error})") from None
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        data = data["train"]
    if not isinstance(data, dict) or not data:
        raise UserError(f'{path}: expected a JSON object {{class: count}} or {{"train": {{class: count}}}}')
    for name, count in data.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise UserError(f"{path}: class {name!r} has count {count!r}; counts must be whole numbers >= 0")
    return data
