"""`camtrap-fast lr-find SHARDS --out DIR`: the learning-rate range test on the training plan, its plot and a
suggested lr (train.lr_find). Every train option applies (sampling, arch, loss, batch size, crops ...)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from camtrap_fast.errors import UserError

LR_FIND_FILES = ("lr_find.json", "lr_find.png")


def add_parser(subparsers) -> None:
    from camtrap_fast.train.options import add_train_arguments

    parser = subparsers.add_parser(
        "lr-find",
        help="learning-rate range test on the training plan: a plot of loss against lr and a suggested lr",
        description="Train a throw-away copy of the model for up to --iterations batches of the training plan "
        "with the lr growing exponentially from --start-lr to --end-lr; stop when the smoothed loss diverges; "
        "write DIR/lr_find.png and DIR/lr_find.json and print the lr of the steepest descent of the smoothed loss. "
        "`train --lr auto` runs the same test first and trains with its suggestion.",
    )
    parser.add_argument("shards", type=Path, help="a `camtrap-fast shard` output folder")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for lr_find.png and lr_find.json (created; a previous lr-find's are replaced)")
    parser.add_argument("--start-lr", type=float, default=1e-7, help="first lr (default 1e-7)")
    parser.add_argument("--end-lr", type=float, default=10.0, help="last lr (default 10)")
    parser.add_argument("--iterations", type=int, default=100, help="batches at most (default 100, fast.ai's)")
    add_train_arguments(parser, skip=("--lr", "--two-phase", "--compare", "--phase2", "--stream-from"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.train.options import config_from_args

    if not 0 < args.start_lr < args.end_lr:
        raise UserError(f"--start-lr {args.start_lr} --end-lr {args.end_lr}: need 0 < start < end")
    if args.iterations < 3:
        raise UserError(f"--iterations {args.iterations}: give at least 3 batches")
    config = config_from_args(args.shards, args)
    _check_out(args.out)
    from camtrap_fast.shards.manifest import load_manifest

    load_manifest(config.shards)  # before torch: a wrong path answers at once
    from camtrap_fast.train.lr_find_run import find_lr

    finding, files = find_lr(config, args.out, args.start_lr, args.end_lr, args.iterations)
    print(f"lr-find: {finding.describe()}")
    print(f"plot: {files[1]}; losses: {files[0]}")
    if finding.suggestion is None:
        raise UserError(f"{files[1]}: the smoothed loss has no descending stretch to suggest an lr from "
                        f"({finding.stopped}); try a smaller --start-lr or more --iterations")
    return 0


def _check_out(out: Path) -> None:
    """Refuse an --out holding files lr-find did not write: only its own two files are ever replaced."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out exists and is not a folder")
    found = out / LR_FIND_FILES[0]
    if found.exists():
        try:
            ours = json.loads(found.read_text(encoding="utf-8")).get("format", "").startswith("camtrap-fast-lr-find")
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise UserError(f"{found}: exists and was not written by lr-find; choose another --out")
