"""Which test photos a run's page shows, and each shown photo's frame or sequence context.

Selection is deterministic (confidence, then key) so the same run gives the same page. Galleries are filled
in order of use to an ecologist, so when the thumbnail budget runs out it is the long tail of the per-species
strips that loses photos: most confident mistakes, then the rare species, then the per-species strips
round-robin over species (a few per species first), then the confusion matrix's cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camtrap_fast.html.run_files import ScoredPhotos
from camtrap_fast.html.thumbs import SplitPhotos, ThumbnailBudget, frame_with_boxes, thumbnail
from camtrap_fast.shards.reader import DamagedSample

CONFIDENT_MISTAKES = 24
RARE_SPECIES = 10
PER_RARE_SPECIES = 8
PER_SPECIES = 8  # correct and mistaken photos, each, in a species' expanded row
PER_CELL = 8
SEQUENCE_CONTEXT = 8


@dataclass
class Gallery:
    """Photo ids per strip, and the page data the script reads (photos, context, images)."""

    budget: ThumbnailBudget = field(default_factory=ThumbnailBudget)
    photos: dict[str, dict] = field(default_factory=dict)
    context: dict[str, dict] = field(default_factory=dict)
    confident_mistakes: list[str] = field(default_factory=list)
    rare: dict[int, list[str]] = field(default_factory=dict)
    correct: dict[int, list[str]] = field(default_factory=dict)
    mistaken: dict[int, list[str]] = field(default_factory=dict)  # true class -> its misclassified photos
    false_alarms: dict[int, list[str]] = field(default_factory=dict)  # predicted class -> others' photos
    cells: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)  # keys whose shard bytes fail their checksum

    def page_data(self) -> dict:
        return {"images": self.budget.images, "photos": self.photos, "context": self.context}


def _ranked(positions: np.ndarray, confidence: np.ndarray, keys: list[str], most_confident: bool) -> list[int]:
    sign = -1.0 if most_confident else 1.0
    return sorted(positions.tolist(), key=lambda j: (sign * np.nan_to_num(confidence[j], nan=-1.0), keys[j]))


class PhotoPicker:
    """Adds photos (by position in the scored predictions) to a Gallery, with their thumbnails."""

    def __init__(self, scored: ScoredPhotos, split: SplitPhotos, classes: list[str], gallery: Gallery,
                 frame_roots: list[Path]):
        self.scored, self.split, self.classes, self.gallery = scored, split, classes, gallery
        self.frame_roots = frame_roots
        self.by_key = {key: j for j, key in enumerate(scored.keys)}

    def add(self, j: int) -> str | None:
        """The photo id of scored sample j, or None when its thumbnail is over budget or it is not in the split."""
        key = self.scored.keys[j]
        if key in self.gallery.photos:
            return key
        i = self.split.position.get(key)
        if i is None:
            return None
        try:
            if self.gallery.budget.add(key, lambda: thumbnail(self.split.jpeg(i))) is None:
                return None
        except DamagedSample:  # counted and said on the page: a report is no place to stop for one bad sample
            self.gallery.damaged.append(key)
            return None
        s = self.scored
        confidence = float(s.confidence[j])
        self.gallery.photos[key] = {
            "i": key, "k": key, "t": self.classes[s.y_true[j]], "p": self.classes[s.y_pred[j]],
            "c": None if np.isnan(confidence) else round(confidence, 4),
            "s": self.split.sequences[i], "f": self.split.sources[i]}
        return key

    def add_all(self, positions) -> list[str]:
        return [pid for pid in map(self.add, positions) if pid is not None]

    def add_context(self, pid: str) -> None:
        """The photo's capture (the split's other samples of its sequence or photo) and, for a crop whose source
        photo is on disk, that photo with the crops' boxes."""
        if pid in self.gallery.context:
            return
        i = self.split.position[pid]
        members = [self.split.index.key(m) for m in self.split.same_sequence(i, SEQUENCE_CONTEXT)]
        sequence = self.add_all(self.by_key[k] for k in members if k in self.by_key)
        context: dict = {"seq": sequence} if sequence else {}
        frame = self._frame(i)
        if frame:
            context["frame"] = frame
        if not context:
            context["why"] = ("no other sample of its capture in this split, and no source photo found on disk"
                              if self.split.sources[i] else "a photo of its own (no sequence id in the shards)")
        self.gallery.context[pid] = context

    def _frame(self, i: int) -> str | None:
        crop = self.split.sample_json(i).get("crop")
        source = self.split.sources[i]
        if not crop or not source:
            return None
        path = next((root / source for root in self.frame_roots if (root / source).is_file()), None)
        if path is None:
            return None
        siblings = self.split.same_source(i)
        boxes = [(self.split.sample_json(j).get("crop") or {}).get("bbox") for j in siblings]
        keep = [(j, tuple(b)) for j, b in zip(siblings, boxes) if b and len(b) == 4]
        highlight = next((n for n, (j, _) in enumerate(keep) if j == i), -1)
        image_id = f"frame:{source}:{i}"
        try:
            return self.gallery.budget.add(image_id, lambda: frame_with_boxes(path, [b for _, b in keep], highlight))
        except OSError:  # a source photo that is no longer readable: the page just goes without it
            return None


def pick(scored: ScoredPhotos, split: SplitPhotos, classes: list[str], train_counts: np.ndarray,
         frame_roots: list[Path], budget: ThumbnailBudget | None = None) -> Gallery:
    """Fill a Gallery for the scored predictions of one split."""
    gallery = Gallery(budget or ThumbnailBudget())
    picker = PhotoPicker(scored, split, classes, gallery, frame_roots)
    y_true, y_pred, conf, keys = scored.y_true, scored.y_pred, scored.confidence, scored.keys
    wrong = np.flatnonzero(y_true != y_pred)
    gallery.confident_mistakes = picker.add_all(_ranked(wrong, conf, keys, True)[:CONFIDENT_MISTAKES])
    support = np.bincount(y_true, minlength=len(classes))
    rare = [c for c in np.argsort(train_counts, kind="stable") if support[c] > 0][:RARE_SPECIES]
    for c in rare:
        gallery.rare[int(c)] = picker.add_all(_ranked(np.flatnonzero(y_true == c), conf, keys, True)[:PER_RARE_SPECIES])
    for pid in gallery.confident_mistakes + [p for ids in gallery.rare.values() for p in ids]:
        picker.add_context(pid)
    # Per-species strips, round-robin over species so a spent budget costs every species alike.
    wanted = {}
    for c in range(len(classes)):
        mine = y_true == c
        wanted[("correct", c)] = _ranked(np.flatnonzero(mine & (y_pred == c)), conf, keys, True)[:PER_SPECIES]
        wanted[("mistaken", c)] = _ranked(np.flatnonzero(mine & (y_pred != c)), conf, keys, True)[:PER_SPECIES]
        wanted[("false_alarms", c)] = _ranked(np.flatnonzero(~mine & (y_pred == c)), conf, keys, True)[:PER_SPECIES]
    for step in range(PER_SPECIES):
        for (kind, c), positions in wanted.items():
            if step < len(positions):
                pid = picker.add(positions[step])
                if pid is not None:
                    getattr(gallery, kind).setdefault(c, []).append(pid)
    pairs = {}
    for j in _ranked(wrong, conf, keys, True):
        pairs.setdefault((int(y_true[j]), int(y_pred[j])), []).append(j)
    for pair, positions in sorted(pairs.items()):
        gallery.cells[pair] = picker.add_all(positions[:PER_CELL])
    return gallery
