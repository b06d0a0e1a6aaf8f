"""`camtrap-fast study SHARDS --out STUDY`: the study's whole protocol over several seeds, its tables and claims."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    from camtrap_fast.study.options import add_study_arguments

    parser = subparsers.add_parser(
        "study",
        help="the study's protocol (baseline + four regimes, phase 1 and 2, every phase-2 method) over seeds",
        description="Train every --regime with every loss at every seed (rebalanced regimes two-phase; the baseline "
        "`none` phase 1 with its features cached), fit every phase-2 method on each run's cached features, and "
        "write the study's tables (table.csv, table.md, species/), figures and checked claims (claims.md) with "
        "mean ± std over seeds into STUDY. Rerun the same command to continue a killed study: finished runs are "
        "skipped and the interrupted one resumed. Any train option applies to every run.",
    )
    add_study_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.study.options import study_config_from_args

    from camtrap_fast.shards.manifest import load_manifest

    # Options and the shard folder are checked before torch is imported: a mistake answers at once.
    config = study_config_from_args(args)
    load_manifest(config.train.shards)
    from camtrap_fast.study.runner import run_study

    result = run_study(config, progress=not args.quiet)
    print((result.out / "table.md").read_text(encoding="utf-8"))
    print(f"claims: {result.out / 'claims.md'}; per species: {result.out / 'species'}; figures: "
          f"{result.out / 'figures'}")
    return 0
