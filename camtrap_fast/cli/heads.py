"""`camtrap-fast heads RUN`: fit phase-2 methods on a run's cached features and compare them in one table."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    from camtrap_fast.train.head_config import PHASE2_METHODS

    parser = subparsers.add_parser(
        "heads",
        help="fit phase-2 methods (cRT, tau-norm, LWS, NCM, logit adjustment, ...) on a run's cached features",
        description="Fit phase-2 methods on the frozen backbone's cached features of a finished run (train to fit, "
        "val for tau and early stopping, test for the report) and compare them: RUN/heads/METHOD/ holds each "
        "method's report, RUN/heads/summary.csv and summary.md the table, f1_by_species.png each method's "
        "per-species F1 against retrain. On a two-phase run this is the study's order (rebalanced features, "
        "classifier on the original data); on a baseline run, whose features are extracted first, Kang et al.'s "
        "(features from the imbalanced data, classifier rebalanced). Methods: " + ", ".join(PHASE2_METHODS) + ".",
    )
    parser.add_argument("run", type=Path, metavar="RUN", help="a training run directory (baseline or two-phase)")
    parser.add_argument("--methods", default="all", metavar="all|M1,M2",
                        help="which methods, in this order (default all)")
    parser.add_argument("--seed", type=int, help="seed of every method (default: the run's, so retrain reproduces "
                        "a retrain run's phase 2)")
    parser.add_argument("--device", help="where a missing feature cache is extracted: auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--shards", type=Path, metavar="DIR",
                        help="where the run's shards are now, if they moved (they must be the same shards)")
    parser.add_argument("--skip-corrupt", action="store_true",
                        help="when extracting: skip and count samples that cannot be read or decoded")
    parser.add_argument("--confusion-matrices", action="store_true",
                        help="also draw each method's confusion_matrix.png (about 2 s each at 52 classes on 2 cores)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.errors import UserError
    from camtrap_fast.train.run_paths import require_run

    # The run folder and the options are checked before torch is imported: a mistake answers at once.
    require_run(args.run)
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed {args.seed}: must be a whole number >= 0")
    if args.shards is not None and not args.shards.is_dir():
        raise UserError(f"--shards {args.shards}: no such folder")
    from camtrap_fast.train.head_config import parse_methods

    methods = parse_methods(args.methods)
    from camtrap_fast.train.heads.runner import fit_heads
    from camtrap_fast.train.heads.summary import format_table

    def progress(fit) -> None:
        chosen = f" ({fit.chosen})" if fit.chosen else ""
        print(f"  {fit.method}: {fit.seconds:.2f} s{chosen}", flush=True)

    from camtrap_fast.train.rundir import Run

    Run(args.run).load_config()  # refuses a folder that is no run before saying what it will fit
    print(f"fitting {', '.join(methods)} on the cached features of {args.run}", flush=True)
    result = fit_heads(args.run, methods, args.seed, args.device or "auto", args.shards, args.skip_corrupt,
                       args.confusion_matrices, on_fit=progress)
    if result.extracted:
        print(f"features extracted for {', '.join(result.extracted)} in {result.extraction_seconds:.1f} s "
              f"(cached in {result.run / 'features'})")
    print(f"\nscores on {result.split} (seed {result.seed}):\n{format_table(result.rows)}\n")
    for note in result.notes:
        print(f"note: {note}")
    print(f"reports: {result.out_dir}/METHOD/, {result.out_dir / 'summary.csv'}"
          + (f", {result.chart}" if result.chart else ""))
    return 0
