"""`camtrap-fast plan`: what a sampling regime does to each class, and (with --list) one epoch's exact order."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from camtrap_fast.errors import UserError

log = logging.getLogger(__name__)

LIST_ONLY = ("seed", "epoch", "world_size", "rank")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="per-class epoch targets for a sampling regime; --list prints an epoch's sample keys",
        description="Show how a sampling regime changes per-class counts for one epoch (ROS/RUS as in "
        "Malik et al. 2021), or list an epoch's sample keys in training order.",
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help='a shard directory (its train split is used) or a JSON file {class: count} or {"train": {class: count}}',
    )
    parser.add_argument(
        "--sampling",
        required=True,
        metavar="SPEC",
        help="none, paper-ros, paper-rus, paper-ros-rus-15k, paper-ros-rus-5k, sqrt, balanced:N, "
        "or terms such as ros:5000,rus:15000 (ROS is applied before the RUS cap)",
    )
    parser.add_argument(
        "--ros-ratios",
        metavar="SCHEDULE",
        help="ROS ratio per size band, BOUND:RATIO for n < BOUND (default 100:10,500:8,1000:6,inf:4)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")
    parser.add_argument("--list", action="store_true", help="print one epoch's sample keys, one per line, in order")
    parser.add_argument("--seed", type=int, help="with --list: the run's seed (default 0)")
    parser.add_argument("--epoch", type=int, help="with --list: which epoch (default 0)")
    parser.add_argument("--world-size", type=int, help="with --list: number of ranks the epoch is split over")
    parser.add_argument("--rank", type=int, help="with --list: which rank's part to print")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.sampling.spec import parse_sampling

    spec = parse_sampling(args.sampling, args.ros_ratios)
    if args.ros_ratios is not None and spec.ros_cap is None:
        log.warning("--ros-ratios has no effect: --sampling %s does no ROS", args.sampling)
    given = [f"--{name.replace('_', '-')}" for name in LIST_ONLY if getattr(args, name) is not None]
    if given and not args.list:
        raise UserError(f"{', '.join(given)} only apply with --list")
    if args.list and args.json:
        raise UserError("--list and --json do not combine; choose one")
    try:
        if args.list:
            _print_epoch(args, spec)
        else:
            _print_plan(args, spec)
    except BrokenPipeError:
        # `... --list | head` closed the pipe: not an error. Point stdout at devnull so the exit flush is quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _print_plan(args: argparse.Namespace, spec) -> None:
    from camtrap_fast.sampling.plan import plan_sampling

    plan = plan_sampling(_class_counts(Path(args.source)), spec)
    if args.json:
        print(json.dumps(plan.as_dict(), indent=1))
        return
    width = max([len("class"), len("total"), *map(len, plan.classes)])
    ratios_note = f" (ros ratios {spec.ros_ratios_text})" if spec.ros_cap is not None else ""
    lines = [f"sampling: {spec.text}{ratios_note}", f"{'class':<{width}} {'original':>10} {'target':>10} {'ratio':>7}"]
    rows = [*zip(plan.classes, plan.original, plan.target), ("total", plan.total_original, plan.total_target)]
    for name, n, t in rows:
        ratio = f"{t / n:.2f}" if n else "-"
        lines.append(f"{name:<{width}} {n:>10} {t:>10} {ratio:>7}")
    print("\n".join(lines))


def _print_epoch(args: argparse.Namespace, spec) -> None:
    from camtrap_fast.sampling.order import epoch_order, shard_for_rank
    from camtrap_fast.sampling.plan import plan_sampling
    from camtrap_fast.shards.manifest import load_manifest

    source = Path(args.source)
    if not source.is_dir():
        raise UserError(f"{source}: --list needs a shard directory (it lists sample keys), not a counts file")
    manifest = load_manifest(source)
    index = manifest.load_index("train")
    plan = plan_sampling(dict(zip(manifest.classes, index.class_counts(manifest.num_classes).tolist())), spec)
    order = epoch_order(index.labels, plan, seed=_or(args.seed, 0), epoch=_or(args.epoch, 0))
    world_size, rank = _or(args.world_size, 1), _or(args.rank, 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise UserError(f"--world-size {world_size} --rank {rank}: need world size >= 1 and 0 <= rank < world size")
    part = shard_for_rank(order, world_size, rank)
    chunk = 65536  # bounded memory for millions of keys
    for start in range(0, len(part), chunk):
        sys.stdout.write("".join(f"{key}\n" for key in index.keys(part[start : start + chunk])))
    sys.stdout.flush()


def _or(value: int | None, default: int) -> int:
    if value is not None and value < 0:
        raise UserError(f"--seed, --epoch, --world-size and --rank must be >= 0, got {value}")
    return default if value is None else value


def _class_counts(source: Path) -> dict[str, int]:
    """{class: count} in class-index order from a shard directory (or its manifest.json, checksums checked)
    or a JSON counts file."""
    if not source.exists():
        raise UserError(f"{source}: no such shard directory or JSON counts file")
    from camtrap_fast.shards.class_counts import read_class_counts

    return read_class_counts(source)
