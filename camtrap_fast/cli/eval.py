"""`camtrap-fast eval`: metrics for any model's predictions CSV, or for a training run directory."""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

from camtrap_fast.errors import UserError

INTEGER = re.compile(r"[+-]?\d+")
REQUIRED_COLUMNS = ("true", "predicted")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="metrics, per-class table and confusion matrix for a predictions CSV or a training run",
        description="Evaluate predictions. Either give a training run directory (RUN), or --predictions with a "
        "CSV of columns true,predicted (class names or integer indices; optional key and confidence columns) "
        "and --out for the metrics directory.",
    )
    parser.add_argument("run", nargs="?", type=Path, metavar="RUN", help="a training run directory")
    parser.add_argument("--split", choices=("test", "val"), help="with RUN: which split to evaluate (default test)")
    parser.add_argument("--shards", type=Path, metavar="DIR",
                        help="with RUN: where the run's shards are now, if they moved (they must be the same shards)")
    parser.add_argument("--device", help="with RUN: auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--aggregate", choices=("none", "sequence"),
                        help="with RUN: sequence adds sequence-level metrics (class probabilities pooled over each "
                        "capture's frames and crops) beside the frame-level ones")
    parser.add_argument("--frames", choices=("all", "first"),
                        help="with RUN: first adds metrics on the first frame of each sequence alone (by frame_num, "
                        "else timestamp, else key order; later frames keep the event's label after the animal "
                        "left) beside the all-frame ones")
    parser.add_argument("--skip-corrupt", action="store_true",
                        help="with RUN: skip and count samples that cannot be read or decoded instead of stopping")
    parser.add_argument("--predictions", type=Path, metavar="FILE.csv", help="predictions CSV to evaluate")
    parser.add_argument("--out", type=Path, metavar="DIR", help="with --predictions: where to write the metrics")
    parser.add_argument("--classes", metavar="A,B,C",
                        help="with --predictions: class names in index order (default: inferred from the file)")
    parser.add_argument("--train-counts", type=Path, metavar="FILE.json",
                        help='with --predictions: training counts {class: count} or {"train": {class: count}}, '
                        "for rarest/commonest-class accuracy and the Count (Train) column")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.run is None) == (args.predictions is None):
        raise UserError("give either a run directory (RUN) or --predictions FILE.csv, not both or neither")
    if args.run is not None:
        given = [flag for flag, value in (("--out", args.out), ("--classes", args.classes),
                                          ("--train-counts", args.train_counts)) if value is not None]
        if given:
            raise UserError(f"{', '.join(given)} only apply with --predictions; a run directory knows its classes")
        return _evaluate_run(args)
    run_only = [flag for flag, value in (("--split", args.split), ("--shards", args.shards), ("--device", args.device),
                                         ("--aggregate", args.aggregate), ("--frames", args.frames),
                                         ("--skip-corrupt", args.skip_corrupt or None))
                if value is not None]
    if run_only:
        raise UserError(f"{', '.join(run_only)} only appl{'ies' if len(run_only) == 1 else 'y'} with a run directory")
    if args.out is None:
        raise UserError("--predictions needs --out DIR for the metrics")
    return _evaluate_predictions(args)


def _evaluate_run(args: argparse.Namespace) -> int:
    from camtrap_fast.train.run_paths import require_run

    require_run(args.run)  # before torch: a wrong path answers at once
    if args.shards is not None and not args.shards.is_dir():
        raise UserError(f"--shards {args.shards}: no such folder")
    from camtrap_fast.train import evaluate_run

    split = args.split or "test"
    result = evaluate_run(args.run, split, args.device or "auto", args.shards, args.skip_corrupt,
                          args.aggregate or "none", args.frames or "all")
    out, metrics, sequences, first = result.out, result.metrics, result.sequences, result.first_frames
    skipped = f", {metrics['skipped_corrupt']} corrupt samples skipped" if metrics["skipped_corrupt"] else ""
    print(f"{metrics['num_samples']} predictions, {metrics['num_classes']} classes, split {split}, "
          f"phase {metrics['phase']}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}"
          f"{skipped} -> {out}")
    if sequences is not None:
        print(f"{sequences['num_samples']} sequences ({sequences['frames']} frames and crops), split {split}, "
              f"phase {sequences['phase']}: accuracy {sequences['accuracy']:.4f}, macro F1 "
              f"{sequences['macro_f1']:.4f} -> {out / 'sequences'}")
    if first is not None:
        print(f"{first['num_samples']} first-frame predictions ({first['chosen']}), split {split}, phase "
              f"{first['phase']}: accuracy {first['accuracy']:.4f}, macro F1 {first['macro_f1']:.4f} "
              f"-> {out / 'first-frames'}")
    return 0


def _evaluate_predictions(args: argparse.Namespace) -> int:
    from camtrap_fast.metrics import Predictions, compute_metrics
    from camtrap_fast.report import write_report
    from camtrap_fast.shards.class_counts import read_class_counts

    path: Path = args.predictions
    columns = read_prediction_columns(path)
    counts = None if args.train_counts is None else read_class_counts(args.train_counts)
    if args.classes is not None:
        class_names = [name.strip() for name in args.classes.split(",")]
        if not all(class_names) or len(set(class_names)) != len(class_names):
            raise UserError(f"--classes {args.classes!r}: give distinct, non-empty names separated by commas")
    elif counts is not None:
        class_names = list(counts)
    else:
        class_names = None
    class_names, y_true, y_pred = encode_labels(path, columns["true"], columns["predicted"], class_names)
    train_counts = None
    if counts is not None:
        missing = [name for name in class_names if name not in counts]
        if missing:
            raise UserError(f"{args.train_counts}: no training count for class {missing[0]!r}")
        train_counts = [counts[name] for name in class_names]
    confidence = None
    if "confidence" in columns:
        confidence = _parse_confidence(path, columns["confidence"])
    predictions = Predictions(y_true, y_pred, keys=tuple(columns["key"]) if "key" in columns else None,
                              confidence=confidence)
    metrics = compute_metrics(y_true, y_pred, class_names, train_counts)
    write_report(args.out, metrics, class_names, predictions=predictions,
                 extra={"source": {"predictions": str(path)}})
    print(f"{metrics.num_samples} predictions, {len(class_names)} classes: accuracy {metrics.accuracy:.4f}, "
          f"macro F1 {metrics.macro_f1:.4f} -> {args.out}")  # the form `eval RUN` prints too
    return 0


def read_prediction_columns(path: Path) -> dict[str, list[str]]:
    """{column: values} for the columns eval uses; at least true and predicted, and one row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            rows = list(reader)
    except FileNotFoundError:
        raise UserError(f"{path}: no such predictions file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path}: cannot read CSV ({error})") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise UserError(f"{path}: missing column {missing[0]!r}; the header must name true,predicted "
                        f"(and optionally key,confidence), found {','.join(header) or 'nothing'}")
    wanted = {name: header.index(name) for name in ("key", "true", "predicted", "confidence") if name in header}
    rows = [row for row in rows if any(cell.strip() for cell in row)]  # blank lines
    if not rows:
        raise UserError(f"{path}: no predictions (the file has a header but no rows)")
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise UserError(f"{path}: row {number} has {len(row)} fields, the header {len(header)}")
    return {name: [row[i].strip() for row in rows] for name, i in wanted.items()}


def encode_labels(path: Path, true: list[str], predicted: list[str], class_names: list[str] | None):
    """(class_names, y_true, y_pred) with integer labels; values are all class names or all indices.

    With known class names, a value that names a class is a name; otherwise it must be an index.
    """
    import numpy as np

    values = [*true, *predicted]
    known = set(class_names or ())
    is_index = [bool(INTEGER.fullmatch(value)) for value in values]
    if class_names is not None and all(value in known for value in values):
        as_names = True
    elif all(is_index):
        as_names = False
    elif any(i and value not in known for i, value in zip(is_index, values)):
        first = next(value for i, value in zip(is_index, values) if i and value not in known)
        raise UserError(f"{path}: labels mix class names and integer indices (e.g. {first!r}); use one kind")
    else:
        as_names = True
    if as_names:
        if class_names is None:
            class_names = sorted(set(values))
        index = {name: i for i, name in enumerate(class_names)}
        for number, value in enumerate(values):
            if value not in index:
                row = number % len(true) + 2
                known = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
                raise UserError(f"{path}: unknown class {value!r} (row {row}); known classes: {known}")
        codes = np.fromiter((index[value] for value in values), dtype=np.int64, count=len(values))
    else:
        codes = np.array([int(value) for value in values], dtype=np.int64)
        if class_names is None:
            if codes.min() < 0:
                raise UserError(f"{path}: class index {codes.min()} is negative")
            class_names = [str(i) for i in range(int(codes.max()) + 1)]
        bad = (codes < 0) | (codes >= len(class_names))
        if bad.any():
            raise UserError(f"{path}: class index {codes[bad][0]} is outside 0..{len(class_names) - 1} "
                            f"({len(class_names)} classes)")
    return list(class_names), codes[: len(true)], codes[len(true):]


def _parse_confidence(path: Path, cells: list[str]):
    import numpy as np

    confidence = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        if cell:
            try:
                confidence[i] = float(cell)
            except ValueError:
                raise UserError(f"{path}: confidence {cell!r} (row {i + 2}) is not a number") from None
    return confidence
