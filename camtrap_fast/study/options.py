"""The `study` command line -> StudyConfig: the study's own flags, and every train flag but the four it sets per run.

`train.options` is the one table of train flags; the study leaves out the ones it decides itself (--sampling by
--regime, --seed by --seeds, --loss by the study's own repeatable --loss SPEC, --two-phase by the regime) and the ones that have no place in a
study (--compare: the study charts two-phase against its own baseline; --phase2: phase 2 is the study's retrain,
and every method is fitted by `heads` anyway).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.sampling.scale import STUDY_TRAIN_IMAGES
from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.study.config import DEFAULT_LOSS, DEFAULT_REGIMES, DEFAULT_SEEDS, StudyConfig, resolve_regimes
from camtrap_fast.train.options import add_train_arguments, config_from_args

STUDY_DECIDES = ("--sampling", "--seed", "--loss", "--two-phase", "--compare", "--phase2")


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", type=Path, metavar="SHARDS", help="a `camtrap-fast shard` output folder")
    parser.add_argument("--out", type=Path, required=True, metavar="STUDY",
                        help="the study folder: created, or continued when it holds this same study")
    parser.add_argument("--regime", action="append", metavar="SPEC",
                        help="a phase-1 regime, any --sampling SPEC (none is the baseline); repeat for more "
                        f"(default the study's five: {', '.join(DEFAULT_REGIMES)})")
    parser.add_argument("--scale-regimes", action="store_true",
                        help="scale the study's presets (caps and ROS bands) by these shards' training images / "
                        f"Snapshot Serengeti season 9's {STUDY_TRAIN_IMAGES:,}, so a small dataset gets the study's "
                        "proportions")
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), metavar="S1,S2,...",
                        help="one run per seed of every regime and loss, paired by seed in the claims (default 0,1,2); "
                        "rerun a study with more seeds to add them")
    parser.add_argument("--loss", action="append", metavar="SPEC", dest="loss_specs",
                        help="a loss of the grid, NAME[:KEY=VALUE,...] with NAME ce, focal, weighted-ce or "
                        "sigmoid-focal and KEY gamma, alpha (A1/A2/... per class), class-weights or beta, e.g. "
                        "focal:gamma=2 or sigmoid-focal:alpha=0.25,gamma=1; repeat for more; every regime runs with "
                        f"each (default {DEFAULT_LOSS}, the study's). Losses can be added to a study, not removed")
    parser.add_argument("--losses", default=None, metavar="L1,L2,...",
                        help="loss names joined by commas: --losses ce,focal is --loss ce --loss focal")
    parser.add_argument("--methods", default="all", metavar="all|M1,M2",
                        help="the phase-2 methods fitted on every run's cached features (default all)")
    parser.add_argument("--frames", choices=("all", "first"), default="all",
                        help="first: table_focal.md also scores every model on the first frame of each test "
                        "sequence alone (as `eval --frames first`), from the runs' predictions (default all)")
    add_train_arguments(parser, skip=STUDY_DECIDES)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def study_config_from_args(args: argparse.Namespace) -> StudyConfig:
    """UserErrors name the flag."""
    from camtrap_fast.sampling.scale import scale_factor
    from camtrap_fast.train.head_config import parse_methods

    train = config_from_args(args.shards, args)
    seeds = _integers(args.seeds, "--seeds")
    if args.loss_specs and args.losses:
        raise UserError("--loss and --losses: give the losses one way (--loss SPEC, repeated)")
    losses = tuple(args.loss_specs or (name.strip() for name in (args.losses or DEFAULT_LOSS).split(",")
                                       if name.strip()))
    methods = parse_methods(args.methods)
    scale = train_images = None
    if args.scale_regimes:
        if not (train.shards / "manifest.json").is_file():
            raise UserError(f"{train.shards}: not a `camtrap-fast shard` output folder (no manifest.json)")
        train_images = load_manifest(train.shards).splits["train"].samples
        scale = scale_factor(train_images)
    regimes = resolve_regimes(tuple(args.regime or DEFAULT_REGIMES), args.ros_ratios, scale)
    return StudyConfig(args.out.expanduser().absolute(), train, regimes, seeds, losses, methods, scale, train_images,
                       args.frames)


def _integers(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"{flag} {text}: give whole numbers joined by commas, e.g. 0,1,2") from None
    if not values:
        raise UserError(f"{flag} {text}: give at least one, e.g. 0,1,2")
    return values
