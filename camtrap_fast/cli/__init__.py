"""Command-line entry point: one sub-module per sub-command.

Each sub-command module defines `add_parser(subparsers)` (which sets
`func=run` on its parser) and `run(args) -> int`. The CLI is the only part of
the package that may import from every stage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from camtrap_fast import __version__
from camtrap_fast.errors import CamtrapError, Fault

# Sub-command modules, imported lazily so `camtrap-fast shard` never pays for torch.
COMMANDS = {
    "synth": "camtrap_fast.cli.synth",
    "shard": "camtrap_fast.cli.shard",
    "plan": "camtrap_fast.cli.plan",
    "verify": "camtrap_fast.cli.verify",
    "eval": "camtrap_fast.cli.eval",
    "train": "camtrap_fast.cli.train",
    "lr-find": "camtrap_fast.cli.lr_find",
    "heads": "camtrap_fast.cli.heads",
    "study": "camtrap_fast.cli.study",
    "predict": "camtrap_fast.cli.predict",
    "demo": "camtrap_fast.cli.demo",
    "bench": "camtrap_fast.cli.bench",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is reported like every other error: one line, exit 2 (`--help` has the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="camtrap-fast",
        description="Fast two-phase training of camera-trap species classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"camtrap-fast {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of its one-line message")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 success, 2 a user mistake (UserError, or a bad option: argparse's own exit 2),
    1 a fault in the data or the system (Fault, or any OSError), 130 interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # a bad option (one line printed, exit 2), or --help / --version (exit 0)
        return int(exit.code or 0)
    try:
        return int(args.func(args) or 0)
    except CamtrapError as error:
        if args.debug:
            raise
        print(f"camtrap-fast {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # disk full, permission refused, ... somewhere no stage named it itself
        if args.debug:
            raise
        words = error.strerror or str(error) or type(error).__name__
        print(f"camtrap-fast {args.command}: error: " + (f"{error.filename}: {words}" if error.filename else words),
              file=sys.stderr)
        return Fault.exit_code
    except KeyboardInterrupt:
        print(f"camtrap-fast {args.command}: interrupted", file=sys.stderr)
        return 130
