"""`camtrap-fast report PATH`: (re)build the self-contained HTML page of a run, a run's heads/ or a study."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the self-contained report.html of a run, of its heads/ or of a study",
        description="Write PATH/report.html: for a training run its summary, sortable per-species table with the "
        "test photos of each species (correct and mistaken), the confusion matrix with each cell's photos, the F1-"
        "change chart and galleries of the most confident mistakes and of the rare species (thumbnails read from "
        "the run's shards); for RUN/heads the phase-2 methods' tables and figure; for a study its tables, claims, "
        "per-species tables and figures. `train`, `eval`, `heads` and `study` write it themselves; this rebuilds it. "
        "The page embeds everything (it opens from disk, with no network) and stays under 15 MB.",
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="a training run, a run's heads/ folder, or a study")
    parser.add_argument("--scores", metavar="NAME",
                        help="a run's metrics folder whose photos the page shows (phase1, phase2, eval-test, ...; "
                        "default: the one written last)")
    parser.add_argument("--shards", type=Path, metavar="DIR", help="where the run's shards are now, if they moved")
    parser.add_argument("--image-root", type=Path, metavar="DIR",
                        help="the folder the shards' source photos are under, to show each crop in its frame "
                        "(default: the MegaDetector file's folder, when the run is on detections)")
    parser.set_defaults(func=run)


def write_run_page(run: Path, scores: str | None = None, shards: Path | None = None) -> str:
    """What `train` and `eval` print last: the path of the run's report.html, written now."""
    from camtrap_fast.html import write_run_report

    return f"report: {write_run_report(run, scores, shards)}"


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.errors import UserError
    from camtrap_fast.html import write_heads_report, write_run_report, write_study_report

    path: Path = args.path
    if not path.is_dir():
        raise UserError(f"{path}: no such folder; give a training run, a run's heads/ folder or a study")
    run_only = [flag for flag, value in (("--scores", args.scores), ("--shards", args.shards),
                                         ("--image-root", args.image_root)) if value is not None]
    if (path / "config.json").is_file():
        out = write_run_report(path, args.scores, args.shards, args.image_root)
    elif run_only:
        raise UserError(f"{', '.join(run_only)} only apply to a training run; {path} is not one (no config.json)")
    elif (path / "summary.csv").is_file() and path.name == "heads":
        out = write_heads_report(path)
    elif (path / "table.md").is_file():
        out = write_study_report(path)
    else:
        raise UserError(f"{path}: not a training run (config.json), a heads/ folder (summary.csv) or a finished "
                        "study (table.md)")
    print(f"report: {out}")
    return 0
