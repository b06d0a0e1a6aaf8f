"""What a run's report reads: its JSON files, its score folders and their predictions, and its shards.

Read without `train.rundir` (which imports torch): `camtrap-fast report RUN` is a few file reads and thumbnails.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camtrap_fast.errors import CamtrapError, UserError
from camtrap_fast.report import METRICS_FILE, read_metrics
from camtrap_fast.shards.manifest import Manifest, load_manifest

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Scores:
    """One metrics folder of a run: phase1/, phase2/, eval-SPLIT/ (and their sequences/ level)."""

    name: str  # its path relative to the run
    path: Path
    metrics: dict

    @property
    def split(self) -> str:
        return str(self.metrics.get("split", "test"))

    @property
    def sequence_level(self) -> bool:
        return self.metrics.get("level") == "sequence"


@dataclass(frozen=True)
class ScoredPhotos:
    """The predictions.csv of a Scores: parallel arrays over its samples."""

    keys: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    confidence: np.ndarray


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if default is not None:
            return default
        raise UserError(f"{path}: missing; is {path.parent} a camtrap-fast training run?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: cannot read ({error})") from None


def check_run(run: Path) -> None:
    if not (run / "config.json").is_file():
        raise UserError(f"{run}: not a camtrap-fast training run (no config.json)")
    if not (run / "phase1" / METRICS_FILE).is_file():
        raise UserError(f"{run}: the run has no scores yet (phase1/{METRICS_FILE} missing); "
                        "its report is written when phase 1 has finished")


def run_scores(run: Path) -> list[Scores]:
    """Every metrics folder of the run, phases first, then eval folders by name."""
    folders = [run / "phase1", run / "phase2"] + sorted(run.glob("eval-*"))
    found = []
    for folder in folders:
        for path in (folder, folder / "sequences"):
            if (path / METRICS_FILE).is_file():
                found.append(Scores(str(path.relative_to(run)), path, read_metrics(path)))
    return found


def choose_focus(scores: list[Scores], name: str | None) -> Scores:
    """The scores whose photos the page shows: `name`, else the most recently written frame-level scores
    (after `train` its final phase, after `eval` that evaluation)."""
    frame_level = [s for s in scores if not s.sequence_level]
    if name is not None:
        for s in scores:
            if s.name == name.strip("/"):
                return s
        raise UserError(f"--scores {name}: the run has no such metrics folder; it has "
                        + ", ".join(s.name for s in frame_level))
    return max(frame_level, key=lambda s: ((s.path / METRICS_FILE).stat().st_mtime_ns, s.name))


def read_predictions(scores: Scores, classes: list[str]) -> ScoredPhotos | None:
    """The folder's predictions.csv (None when it has none, e.g. a report written without keys)."""
    path = scores.path / "predictions.csv"
    if not path.is_file():
        return None
    index = {name: i for i, name in enumerate(classes)}
    keys, true, pred, conf = [], [], [], []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["true"] not in index or row["predicted"] not in index:
                raise UserError(f"{path}: names class {row['true']!r} or {row['predicted']!r}, which is not "
                                f"in {scores.path.parent}/classes.json")
            keys.append(row["key"])
            true.append(index[row["true"]])
            pred.append(index[row["predicted"]])
            conf.append(float(row["confidence"]) if row.get("confidence") else math.nan)
    return ScoredPhotos(keys, np.array(true, dtype=np.int64), np.array(pred, dtype=np.int64),
                        np.array(conf, dtype=np.float64))


def run_manifest(run: Path, shards: Path | None) -> tuple[Manifest | None, str]:
    """(the run's shards, "") or (None, why the page has no photos): a report is still written without them."""
    recorded = read_json(run / "shards.json")
    where = Path(shards) if shards is not None else Path(recorded["path"])
    if not (where / "manifest.json").is_file():
        return None, f"the run's shards are not at {where} (moved? pass --shards DIR), so no photos are shown"
    try:
        manifest = load_manifest(where)
    except CamtrapError as error:
        return None, f"the run's shards cannot be read ({error}), so no photos are shown"
    if manifest.fingerprint != recorded["fingerprint"]:
        return None, (f"{where} holds other shards than the ones the run trained on (fingerprint differs), "
                      "so no photos are shown")
    return manifest, ""
