"""`camtrap-fast train SHARDS --out RUN`: a baseline, or two-phase training with a cached-feature phase 2."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    from camtrap_fast.train.options import add_train_arguments

    parser = subparsers.add_parser(
        "train",
        help="train a species classifier (baseline, or --two-phase) and write per-species reports",
        description="Phase 1 trains every layer on the --sampling plan; with --two-phase, phase 2 freezes the "
        "backbone, caches its features once and retrains the final layer on the original, imbalanced data "
        "(or fits it by another --phase2 method; `camtrap-fast heads RUN` compares them all afterwards).",
    )
    parser.add_argument("shards", type=Path, help="a `camtrap-fast shard` output folder")
    parser.add_argument("--out", type=Path, required=True, help="run directory to create (or continue with --resume)")
    add_train_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue a killed run in --out, with its options")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.shards.manifest import load_manifest
    from camtrap_fast.train.options import config_from_args

    # Options and the shard folder are checked before torch is imported: a mistake answers at once.
    config = config_from_args(args.shards, args)
    load_manifest(config.shards)
    from camtrap_fast.train import train

    summary = train(config, args.out, resume=args.resume, progress=not args.quiet)
    if summary:
        print(format_summary(summary, args.out))
    return 0


def format_summary(summary: dict, run: Path) -> str:
    lines = [f"{'':<10}{'accuracy':>10}{'macro-F1':>10}"]
    for name in ("baseline", "phase1", "phase2"):
        if name in summary:
            lines.append(f"{name:<10}{summary[name]['accuracy']:>10.3f}{summary[name]['macro_f1']:>10.3f}")
    lines.append(f"reports: {run}/phase1" + (f", {run}/phase2" if "phase2" in summary else "")
                 + f" (scores on the {summary.get('split', 'test')} split)")
    lines += [f"warning: {warning}" for warning in summary.get("warnings", ())]
    return "\n".join(lines)
