"""Instant answers: `--help`, `COMMAND --help` and argument or path errors, timed against `python -c pass`.

    python bench/startup.py [--repeats 5] [--ci]

Each case runs `python -m camtrap_fast ...` in a fresh process (what a user waits for), median of repeats,
beside the interpreter's own start-up in the same run. Target: every answer in < 0.5 s (ratio: 0.5 s over the
slowest case's median). A case must exit as expected (0 for help, 2 for a user error) with one line on stderr,
so a traceback or a hang can never pass as fast.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from results import machine_line, write_result  # noqa: E402

from camtrap_fast.cli import COMMANDS  # noqa: E402 (the subcommands, without importing them)

BUDGET_SECONDS = 0.5


def cases(tmp: Path) -> dict[str, tuple[list[str], int]]:
    """name -> (arguments, expected exit code). Paths that do not exist, and options that are out of range."""
    missing = str(tmp / "missing")
    run = tmp / "run"  # passes the light check (a config.json), so the option after it is what fails
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text("{}")
    found = {"--help": (["--help"], 0)}
    found.update({f"{c} --help": ([c, "--help"], 0) for c in COMMANDS})
    found.update({
        "bad option": (["train", missing, "--out", str(tmp / "o"), "--no-such-option"], 2),
        "synth bad scale": (["synth", str(tmp / "s"), "--scale", "-1"], 2),
        "shard missing input": (["shard", missing, str(tmp / "out")], 2),
        "plan missing shards": (["plan", missing, "--sampling", "none"], 2),
        "verify missing shards": (["verify", missing], 2),
        "eval missing run": (["eval", missing], 2),
        "train missing shards": (["train", missing, "--out", str(tmp / "run")], 2),
        "heads missing run": (["heads", missing], 2),
        "study missing shards": (["study", missing, "--out", str(tmp / "study")], 2),
        "predict missing run": (["predict", missing, missing, "--out", str(tmp / "p.csv")], 2),
        "demo bad scale": (["demo", "--workdir", str(tmp / "demo"), "--scale", "-1"], 2),
        "bench loader missing shards": (["bench", "loader", missing], 2),
        "train bad epochs": (["train", missing, "--out", str(tmp / "run2"), "--epochs", "0"], 2),
        "heads bad methods": (["heads", str(run), "--methods", "bogus"], 2),
        "heads missing shards": (["heads", str(run), "--shards", missing], 2),
        "eval missing shards": (["eval", str(run), "--shards", missing], 2),
        "predict bad format": (["predict", str(run), missing, "--out", str(tmp / "p.xlsx")], 2),
        "study bad seeds": (["study", missing, "--out", str(tmp / "study"), "--seeds", "x"], 2),
        "eval missing predictions": (["eval", "--predictions", missing, "--out", str(tmp / "m")], 2),
        "lr-find missing shards": (["lr-find", missing, "--out", str(tmp / "lr")], 2),
        "lr-find bad range": (["lr-find", missing, "--out", str(tmp / "lr"), "--start-lr", "1", "--end-lr", "0.1"], 2),
        "demo bad backend": (["demo", "--workdir", str(tmp / "demo"), "--backend", "nope"], 2),
    })
    return found


def time_once(argv: list[str], expected: int, name: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    if done.returncode != expected or (expected != 0 and len(lines) != 1):
        raise SystemExit(f"startup: case {name!r} exited {done.returncode} (expected {expected}) with stderr:\n"
                         f"{done.stderr}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ci", action="store_true", help="the CI size: 3 repeats")
    args = parser.parse_args()
    repeats = 3 if args.ci else args.repeats
    print(machine_line(f"{repeats} repeats per case, one process each"), flush=True)
    python = [sys.executable]
    with tempfile.TemporaryDirectory(prefix="camtrap-bench-startup-") as tmp:
        table = cases(Path(tmp))
        time_once(python + ["-m", "camtrap_fast", "--help"], 0, "warm-up")  # page cache, .pyc files
        baseline = statistics.median(time_once(python + ["-c", "pass"], 0, "python -c pass") for _ in range(repeats))
        medians = {name: statistics.median(time_once(python + ["-m", "camtrap_fast", *argv], code, name)
                                           for _ in range(repeats)) for name, (argv, code) in table.items()}
    width = max(map(len, medians))
    print(f"{'python -c pass':<{width}} {baseline:6.3f} s")
    for name, seconds in medians.items():
        flag = "" if seconds < BUDGET_SECONDS else "  OVER 0.5 s"
        print(f"{name:<{width}} {seconds:6.3f} s  (+{seconds - baseline:.3f} s over python){flag}")
    slowest = max(medians, key=medians.get)
    print(f"slowest: {slowest} {medians[slowest]:.3f} s; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    write_result("startup", {"seconds": {k: round(v, 4) for k, v in medians.items()}, "slowest_case": slowest,
                             "slowest_seconds": round(medians[slowest], 4)},
                 {"python_c_pass_seconds": round(baseline, 4)},
                 {"budget_vs_slowest": BUDGET_SECONDS / medians[slowest]},
                 config={"repeats": repeats, "budget_seconds": BUDGET_SECONDS}, ci=args.ci)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
