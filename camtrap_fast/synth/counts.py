"""Per-class image counts for the demo dataset: the packaged Serengeti S9 train split, scaled."""

from __future__ import annotations

import json
import math
from importlib import resources

from camtrap_fast.errors import UserError

COUNTS_RESOURCE = "serengeti_s9_class_counts.json"


def load_class_counts(split: str = "train") -> dict[str, int]:
    """Class name -> image count of one split of the packaged table, in the table's order (largest first)."""
    text = resources.files("camtrap_fast").joinpath("data", COUNTS_RESOURCE).read_text(encoding="utf-8")
    table = json.loads(text)
    if split not in table or not isinstance(table[split], dict):
        splits = ", ".join(k for k, v in table.items() if isinstance(v, dict))
        raise UserError(f"{COUNTS_RESOURCE}: no split {split!r} (have: {splits})")
    return {str(name): int(count) for name, count in table[split].items()}


def scale_class_counts(counts: dict[str, int], scale: float, min_count: int) -> dict[str, int]:
    """Multiply every count by `scale`, rounding half up, and lift each class to at least `min_count`.

    The floor keeps the rarest classes present in every split of an 80/10/10 split
    while leaving the head of the long tail as skewed as the original.
    """
    return {name: max(min_count, math.floor(count * scale + 0.5)) for name, count in counts.items()}
