"""One result file per benchmark run: bench/results/NAME.json, and the CI check of its ratios against bench/targets.py.

    write_result("shard", figures={...}, baseline={...}, ratios={"encode_vs_naive": 3.4})

A result holds the figures (ours), the baseline's figures from the same run, the ratios, the machine, the load
average, the versions and the date. `write_result` prints each ratio as `N.NN×` beside its target and floor.

    python bench/results.py check [--since FILE]   # CI: every table row has a fresh result at or above its floor
    python bench/results.py readme                 # rewrite bench/README.md's targets table from bench/targets.py
    python bench/results.py table                  # print that table
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH.parent) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(BENCH.parent))
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from camtrap_fast.atomic import write_text  # noqa: E402
from camtrap_fast.environment import git_sha, machine, package_versions  # noqa: E402
from targets import TARGETS, Target, targets_for  # noqa: E402

RESULTS = Path(os.environ.get("CAMTRAP_FAST_BENCH_RESULTS", BENCH / "results"))
README = BENCH / "README.md"
BEGIN, END = "<!-- targets:begin (python bench/results.py readme) -->", "<!-- targets:end -->"
SCHEMA = 1


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's name, with its family, model and widest vector unit where /proc/cpuinfo has them: a VM's "AMD EPYC"
    has been Zen 3, Zen 4 and Zen 5 hosts on different days, and the phase-2 head's seconds follow the host, not the
    name (bench/README.md)."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():  # the first processor's block
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    flags = set((fields.get("flags") or fields.get("Features", "")).split())  # Features: ARM's name for them
    isa = next((isa for isa, flag in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("NEON", "asimd")) if flag in flags), "")
    details = [f"family {fields['cpu family']} model {fields['model']}"] if "cpu family" in fields and "model" in fields else []
    details += [isa] if isa else []
    return f"{name} ({', '.join(details)})" if details else name


def machine_info() -> dict:
    """Where a figure was measured. Names the GPU only if torch is already imported (never imports it)."""
    info = {**machine(), "cpu_model": cpu_model(), "usable_cpus": len(os.sched_getaffinity(0))}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_line(extra: str = "") -> str:
    """One printable line: machine, CPUs, GPU, versions, load average."""
    info, versions = machine_info(), package_versions()
    names = ("torch", "torchvision", "nvidia-dali-cuda130", "pillow-simd", "pillow", "numpy")
    shown = ", ".join(f"{n} {versions[n]}" for n in names if n in versions)
    return (f"measured on: {info['platform']}, {info['cpu_model']}, {info['usable_cpus']} CPUs, "
            f"{info.get('gpu', 'no GPU')}; python {versions['python']}, {shown}; "
            f"load average {' '.join(f'{x:.1f}' for x in load_average())}" + (f"; {extra}" if extra else ""))


def ratio_line(benchmark: str, ratio: str, value: float) -> str:
    target = targets_for(benchmark)[ratio]
    verdict = "meets target" if value >= target.target else ("below target" if value >= target.floor
                                                             else "BELOW FLOOR")
    return (f"{benchmark}.{ratio}: {value:.2f}× (target {target.target:.2f}×, CI floor {target.floor:.2f}×): "
            f"{verdict} — {target.meaning}")


def write_result(name: str, figures: dict, baseline: dict, ratios: dict[str, float], *,
                 config: dict | None = None, ci: bool = False, out_dir: Path | None = None,
                 skipped: str | None = None) -> Path:
    """Write bench/results/NAME.json and print the ratios. Every ratio must have a row in bench/targets.py.
    skipped: why nothing was measured (e.g. no GPU); the CI check accepts it only for rows with `needs` set."""
    known = targets_for(name)
    unknown = sorted(set(ratios) - set(known))
    if unknown:
        raise ValueError(f"{name}: ratios {unknown} have no row in bench/targets.py; add one (target and floor)")
    result = {
        "schema": SCHEMA,
        "benchmark": name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "unix_time": time.time(),
        "ci_size": ci,
        "figures": figures,
        "baseline": baseline,
        "ratios": {key: round(float(value), 4) for key, value in ratios.items()},
        "targets": {key: {"target": known[key].target, "floor": known[key].floor} for key in ratios},
        "config": config or {},
        "machine": machine_info(),
        "load_average": load_average(),
        "versions": package_versions(),
        "git_sha": git_sha(),
    }
    if skipped:
        result["skipped"] = skipped
        print(f"{name}: skipped ({skipped})", flush=True)
    path = (out_dir or RESULTS) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(result, indent=1, default=str) + "\n")
    for key, value in ratios.items():
        print(ratio_line(name, key, value), flush=True)
    print(f"wrote {path}", flush=True)
    return path


def check(results_dir: Path, since: float | None = None, targets: tuple[Target, ...] = TARGETS) -> list[str]:
    """Problems that fail CI: a table row without a (fresh) result, or a ratio below its floor."""
    problems = []
    for benchmark in sorted({t.benchmark for t in targets}):
        path = results_dir / f"{benchmark}.json"
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            problems.append(f"{path}: no readable result ({error.__class__.__name__}); did bench/{benchmark} run?")
            continue
        if since is not None and result.get("unix_time", 0) < since:
            problems.append(f"{path}: stale (written before this bench-ci run started)")
            continue
        rows = [t for t in targets if t.benchmark == benchmark]
        if result.get("skipped"):
            if not all(t.needs for t in rows):
                problems.append(f"{path}: skipped ({result['skipped']}), but its ratios need nothing special")
            continue
        for target in rows:
            value = result.get("ratios", {}).get(target.ratio)
            if value is None:
                problems.append(f"{path}: ratio {target.ratio!r} missing")
            elif value < target.floor:
                problems.append(f"{path}: {target.ratio} {value:.2f}× is below its CI floor {target.floor:.2f}× "
                                f"(target {target.target:.2f}×)")
    return problems


def readme_table(targets: tuple[Target, ...] = TARGETS) -> str:
    rows = ["| benchmark | ratio | what it divides | target | CI floor |", "| --- | --- | --- | ---: | ---: |"]
    rows += [f"| `{t.benchmark}` | `{t.ratio}` | {t.meaning} | {t.target:.2f}× | {t.floor:.2f}× |" for t in targets]
    return "\n".join(rows)


def readme_with_table(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"{README}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{readme_table()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="fail unless every table row has a result at or above its floor")
    check_parser.add_argument("--results", type=Path, default=RESULTS)
    check_parser.add_argument("--since", type=Path, help="results older than this file's mtime count as missing")
    commands.add_parser("readme", help="rewrite bench/README.md's targets table")
    commands.add_parser("table", help="print the targets table")
    args = parser.parse_args()
    if args.command == "table":
        print(readme_table())
        return 0
    if args.command == "readme":
        write_text(README, readme_with_table(README.read_text()))
        print(f"updated {README}")
        return 0
    since = args.since.stat().st_mtime if args.since else None
    problems = check(args.results, since)
    for problem in problems:
        print(f"bench-ci: {problem}", file=sys.stderr)
    if not problems:
        print(f"bench-ci: all {len(TARGETS)} ratios at or above their floors ({args.results})")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
