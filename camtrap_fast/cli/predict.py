"""`camtrap-fast predict RUN IMAGE_OR_DIR... --out preds.csv`: classify new photos with a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="classify new photos with a trained run",
                                   description="Classify photos of any size; unreadable files are listed with a reason.")
    parser.add_argument("run", type=Path, help="a training run directory")
    parser.add_argument("inputs", type=Path, nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (- for standard output)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from camtrap_fast.atomic import check_target
    from camtrap_fast.devices import resolve_device
    from camtrap_fast.errors import UserError
    from camtrap_fast.predict import list_images, predict_files, write_predictions
    from camtrap_fast.train import Run

    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: must be at least 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be at least 1")
    check_target(args.out)  # a folder as --out is refused before any photo is classified
    device = resolve_device(args.device)
    run = Run(args.run)
    model, _, classes = run.load_model(device)
    preprocessing = run.preprocessing()
    files, other_files = list_images(args.inputs)
    predictions = predict_files(model, classes, files, preprocessing, args.top_k, args.batch_size, device)
    failed = sum(1 for p in predictions if p.error)
    if failed == len(predictions):
        first = next(p for p in predictions if p.error)
        raise UserError(f"none of the {len(predictions)} files could be classified (first: {first.path}: "
                        f"{first.error}); nothing written")
    write_predictions(args.out, predictions, args.top_k)
    # With --out - the CSV is on stdout: the summary goes to stderr so the two never mix.
    report = sys.stderr if str(args.out) == "-" else sys.stdout
    print(f"classified {len(predictions) - failed} of {len(predictions)} files -> {args.out}"
          + (f" ({failed} unreadable, listed with a reason)" if failed else "")
          + (f"; {other_files} non-image files skipped" if other_files else ""), file=report)
    return 0
