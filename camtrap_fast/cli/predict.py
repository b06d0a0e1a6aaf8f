"""`camtrap-fast predict RUN IMAGES... --out FILE`: classify new photos, or a MegaDetector file's detections."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="classify new photos (or MegaDetector detections) with a trained run",
        description="Classify photos of any size, or with --detections the crops of a MegaDetector file's "
        "detections (cut as `shard --detections` cuts them), into CSV, MegaDetector JSON (Timelapse) or Camtrap "
        "DP. Unreadable files are listed with a reason.")
    parser.add_argument("run", type=Path, help="a training run directory")
    parser.add_argument("inputs", type=Path, nargs="+",
                        help="image files or folders (searched recursively); with --detections, the one folder "
                        "the detector ran on")
    parser.add_argument("--out", type=Path, required=True,
                        help="where to write: FILE.csv (- for standard output), FILE.json (MegaDetector format) "
                        "or a folder (Camtrap DP)")
    parser.add_argument("--format", choices=("csv", "md-json", "camtrap-dp"),
                        help="output format (default: from --out)")
    parser.add_argument("--top-k", type=int, default=5, help="classes per prediction (default 5)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--detections", type=Path, metavar="MD.json",
                        help="a MegaDetector batch-output file: classify each qualifying detection's crop")
    parser.add_argument("--min-detection-conf", type=float,
                        help="with --detections: the lowest detector confidence classified (default: the run's "
                        "training crops' threshold, else 0.2)")
    parser.add_argument("--detection-categories",
                        help="with --detections: detector categories to classify, names or ids (default: the "
                        "run's, else animal)")
    parser.add_argument("--aggregate", choices=("none", "sequence"), default="none",
                        help="sequence: also pool the class probabilities of each sequence's frames and crops")
    parser.add_argument("--burst-seconds", type=float, default=10.0,
                        help="with --aggregate sequence and no --sequences: photos of one folder taken within "
                        "this many seconds of the previous one (EXIF time) are one sequence (default 10)")
    parser.add_argument("--sequences", type=Path, metavar="SOURCE",
                        help="with --aggregate sequence: a COCO Camera Traps file, Camtrap DP package or CSV whose "
                        "seq_id / events name the sequences; its photos are matched by path, so a photo it does "
                        "not list (a warning says how many) is a sequence of its own")
    parser.add_argument("--image-root", type=Path, metavar="FOLDER",
                        help="with --sequences: the folder its relative photo paths start from, when the file "
                        "lives apart from its photos (default: the file's own folder, as for shard --image-root)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from camtrap_fast.predict.formats import choose_format
    from camtrap_fast.train.run_paths import require_run

    # The run folder and --out's format are checked before torch is imported: a mistake answers at once.
    require_run(args.run)
    choose_format(args.out, args.format)
    from camtrap_fast.predict import PredictJob, run_predict
    from camtrap_fast.predict.items import DetectionOptions

    categories = None if args.detection_categories is None else \
        tuple(c.strip() for c in args.detection_categories.split(",") if c.strip())
    job = PredictJob(run=args.run, inputs=tuple(args.inputs), out=args.out, format=args.format, top_k=args.top_k,
                     batch_size=args.batch_size, device=args.device, detections=args.detections,
                     detection=DetectionOptions(args.min_detection_conf, categories), aggregate=args.aggregate,
                     burst_seconds=args.burst_seconds, sequences=args.sequences, image_root=args.image_root)
    summary = run_predict(job)
    if summary.repeated:
        print(f"warning: {summary.repeated} photos given more than once, classified once", file=sys.stderr)
    if summary.unmatched:
        print(f"warning: {summary.unmatched} of {summary.photos} photos not found in {args.sequences}; they are their "
              "own sequences" + ("" if args.image_root else " (if its paths start from another folder, give it as "
                                 "--image-root)"), file=sys.stderr)
    if summary.untimed:
        print(f"warning: {summary.untimed} classified photos have no capture time (no EXIF "
              "DateTimeOriginal, no package timestamp); their observations' eventStart and eventEnd are empty, "
              "which Camtrap DP requires: fill them in before publishing", file=sys.stderr)
    what = "detections and images" if args.detections is not None else "files"
    notes = []
    if summary.failed:
        notes.append(f"{summary.failed} unreadable, listed with a reason")
    if summary.not_classified:
        notes.append(f"{summary.not_classified} images without a qualifying detection, listed")
    if summary.other_files:
        notes.append(f"{summary.other_files} non-image files skipped")
    if summary.sequences:
        notes.append(f"{summary.sequences} sequences pooled")
    # With --out - the CSV is on stdout: the summary goes to stderr so the two never mix.
    report = sys.stderr if str(args.out) == "-" else sys.stdout
    print(f"classified {summary.classified} of {summary.items} {what} -> {summary.out} ({summary.format})"
          + (f"; {'; '.join(notes)}" if notes else ""), file=report)
    return 0
