"""`camtrap-fast predict RUN IMAGE_OR_DIR... --out preds.csv`: classify new photos with a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="classify new photos with a trained run",
                                   description="Classify photos of any size; unreadable files are listed with a reason.")
    parser.add_argument("run", type=Path, help="a training run directory")
    parser.add_argument("inputs", type=Path, nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.devices import resolve_device
    from camtrap_fast.errors import UserError
    from camtrap_fast.predict import list_images, predict_files, write_predictions
    from camtrap_fast.train import Run

    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: must be at least 1")
    device = resolve_device(args.device)
    run = Run(args.run)
    model, _, classes = run.load_model(device)
    preprocessing = run.preprocessing()
    files = list_images(args.inputs)
    predictions = predict_files(model, classes, files, preprocessing, args.top_k, args.batch_size, device)
    write_predictions(args.out, predictions, args.top_k)
    failed = sum(1 for p in predictions if p.error)
    print(f"classified {len(predictions) - failed} of {len(predictions)} files -> {args.out}"
          + (f" ({failed} unreadable, listed with a reason)" if failed else ""))
    return 0
