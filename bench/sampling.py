"""Benchmark the sampler: plan + epoch order for 2M samples, and reader time with vs without a RUS plan.

    python bench/sampling.py [SHARD_DIR] [--samples 2000000] [--reader-samples 12000] [--payload-bytes 16384]

1. Plan + order for `--samples` samples with the Snapshot Serengeti season-9
   class profile scaled up, per regime (median and spread of --repeats runs after
   a warm-up), against two baselines measured in the same run: a plain-Python
   implementation of the same exact rule (run on a tenth of the samples and
   extrapolated linearly, since it is O(n)), and torch's WeightedRandomSampler
   draw (torch.multinomial with replacement, same total; fast but not exact, so
   its worst per-class error is printed too).
2. One epoch through the random-access reader (and through the streaming reader)
   with no plan and with a RUS plan, on SHARD_DIR's train split or on shards
   generated into a temp dir. RUS should cost time in proportion to the samples
   it keeps on the random-access path; streaming still reads every shard.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from camtrap_fast.sampling import (  # noqa: E402
    class_targets,
    epoch_order,
    parse_sampling,
    plan_sampling,
)
from camtrap_fast.pipelines.streaming import iter_epoch_samples, stream_epoch  # noqa: E402
from camtrap_fast.shards.manifest import load_manifest  # noqa: E402
from camtrap_fast.shards.reader import ShardReader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_result  # noqa: E402

S9_COUNTS = REPO / "camtrap_fast" / "data" / "serengeti_s9_class_counts.json"
REGIMES = ("none", "paper-ros", "paper-rus", "paper-ros-rus-15k", "sqrt")


def machine() -> str:
    import torch

    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}"
    )


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """(median s, max - min s, last result) after one untimed warm-up."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times) - min(times), result


def s9_profile(total: int) -> dict[str, int]:
    """Season-9 train counts scaled to `total` samples; every class keeps at least one image."""
    s9 = json.loads(S9_COUNTS.read_text())["train"]
    scale = total / sum(s9.values())
    counts = {c: max(1, round(n * scale)) for c, n in s9.items()}
    counts[max(counts, key=counts.get)] += total - sum(counts.values())
    return counts


def shuffled_labels(counts: dict[str, int]) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts), dtype=np.int32), list(counts.values()))
    return np.random.default_rng(0).permutation(labels)


def naive_epoch(labels: list[int], counts: list[int], targets: list[int], seed: int) -> list[int]:
    """The same exact rule in plain Python lists: the baseline the vectorized version replaces."""
    rng = random.Random(seed)
    by_class: list[list[int]] = [[] for _ in counts]
    for i, label in enumerate(labels):
        by_class[label].append(i)
    order: list[int] = []
    for members, t in zip(by_class, targets):
        if members:
            whole, extra = divmod(t, len(members))
            order.extend(members * whole)
            order.extend(rng.sample(members, extra))
    rng.shuffle(order)
    return order


def bench_planning(samples: int, repeats: int) -> dict:
    import torch

    counts = s9_profile(samples)
    labels = shuffled_labels(counts)
    print(f"\n== plan + epoch order, {samples:,} samples, season-9 profile ({len(counts)} classes) ==")
    print(f"{'regime':<20} {'epoch samples':>13} {'median s':>9} {'spread s':>9}")
    results = {}
    for regime in REGIMES:

        def plan_and_order(regime=regime):
            plan = plan_sampling(counts, parse_sampling(regime))
            return plan, epoch_order(labels, plan, seed=0, epoch=1)

        median, spread, (plan, order) = timed(plan_and_order, repeats)
        results[regime] = median
        print(f"{regime:<20} {len(order):>13,} {median:>9.3f} {spread:>9.3f}")

    regime = "paper-ros-rus-15k"
    spec = parse_sampling(regime)
    small = samples // 10
    small_counts = s9_profile(small)
    small_labels = shuffled_labels(small_counts)
    small_targets = class_targets(np.array(list(small_counts.values())), spec).tolist()
    median_naive, _, _ = timed(
        lambda: naive_epoch(small_labels.tolist(), list(small_counts.values()), small_targets, seed=1),
        max(1, repeats // 2),
    )
    naive_2m = median_naive * samples / small
    print(f"baseline, plain Python lists ({regime}): {median_naive:.3f} s for {small:,} "
          f"-> ~{naive_2m:.2f} s for {samples:,}"
          f" (x{naive_2m / results[regime]:.1f} slower than vectorized)")

    plan = plan_sampling(counts, spec)
    n = np.array(plan.original)
    weights = torch.from_numpy((np.array(plan.target) / n)[labels])
    generator = torch.Generator().manual_seed(0)
    median_torch, _, draw = timed(
        lambda: torch.multinomial(weights, plan.total_target, replacement=True, generator=generator), repeats
    )
    drawn = np.bincount(labels[draw.numpy()], minlength=len(n))
    worst = int(np.abs(drawn - np.array(plan.target)).max())
    max_copies = int(np.bincount(draw.numpy()).max())
    print(f"baseline, WeightedRandomSampler draw ({regime}): {median_torch:.3f} s "
          f"(x{median_torch / results[regime]:.1f} the vectorized exact order's time); not exact: "
          f"worst class off by {worst} samples, one image drawn {max_copies} times")
    return {"samples": samples, "plan_seconds": {r: round(s, 4) for r, s in results.items()},
            "python_seconds_scaled": round(naive_2m, 3), "multinomial_seconds": round(median_torch, 4),
            "ours": results[regime], "multinomial_worst_class_error": worst}


def bench_reader(shard_dir: Path, sampling: str, repeats: int) -> dict:
    manifest = load_manifest(shard_dir)
    index = manifest.load_index("train")
    counts = dict(zip(manifest.classes, index.class_counts(manifest.num_classes).tolist()))
    urls = [str(p) for p in manifest.shard_paths("train")]
    total_bytes = sum(os.path.getsize(u) for u in urls)
    print(f"\n== one epoch through the readers: {shard_dir} ({len(index):,} samples, {len(urls)} shards, "
          f"{total_bytes / 2**20:.0f} MiB, page cache warm) ==")
    print(f"{'reader':<14} {'plan':<12} {'samples':>8} {'median s':>9} {'spread s':>9} {'samples/s':>10}")
    orders = {}
    for name in ("none", sampling):
        plan = plan_sampling(counts, parse_sampling(name))
        orders[name] = (plan, epoch_order(index.labels, plan, seed=0, epoch=0))

    def random_access(name):
        with ShardReader(index, manifest.root) as reader:
            return sum(len(jpg) for _, jpg, _ in iter_epoch_samples(reader, orders[name][1]))

    def streaming(name):
        return sum(len(jpg) for _, jpg, _ in stream_epoch(urls, index, orders[name][0], 0, 0, shuffle_buffer=1000))

    rows = {}
    for reader, fn in (("random-access", random_access), ("streaming", streaming)):
        # Alternate the two plans so load from other processes on a shared machine hits both alike.
        times = {name: [] for name in orders}
        for name in orders:
            fn(name)  # warm-up
        for _ in range(repeats):
            for name in orders:
                start = time.perf_counter()
                fn(name)
                times[name].append(time.perf_counter() - start)
        for name, samples in ((name, len(order)) for name, (_, order) in orders.items()):
            median, spread = statistics.median(times[name]), max(times[name]) - min(times[name])
            rows[reader, name] = (median, samples)
            print(f"{reader:<14} {name:<12} {samples:>8,} {median:>9.3f} {spread:>9.3f} {samples / median:>10,.0f}")
    for reader in ("random-access", "streaming"):
        (t_all, n_all), (t_rus, n_rus) = rows[reader, "none"], rows[reader, sampling]
        print(f"{reader}: {sampling} / none time ratio {t_rus / t_all:.2f} vs samples ratio {n_rus / n_all:.2f}")
    return {f"{reader} {plan}": {"seconds": round(seconds, 4), "samples": samples}
            for (reader, plan), (seconds, samples) in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shard_dir", nargs="?", type=Path, help="a shard directory (default: generate one)")
    parser.add_argument("--samples", type=int, default=2_000_000, help="samples for the planning benchmark")
    parser.add_argument("--reader-samples", type=int, default=12_000, help="samples in the generated shard directory")
    parser.add_argument("--payload-bytes", type=int, default=16384, help="JPEG payload size in the generated shards")
    parser.add_argument("--reader-sampling", help="RUS regime for the readers (default: rus:15000 scaled like the data)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ci", action="store_true", help="the CI size: 200,000 samples, 3,000 in the shards, 2 repeats")
    args = parser.parse_args()
    if args.ci:
        args.samples, args.reader_samples, args.repeats = 200_000, 3_000, 2
    print(f"machine: {machine()}")
    planning = bench_planning(args.samples, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        shard_dir = args.shard_dir
        scale = args.reader_samples / sum(json.loads(S9_COUNTS.read_text())["train"].values())
        if shard_dir is None:
            sys.path.insert(0, str(REPO / "tests"))
            from sampling_fixtures import make_shard_dir  # the test fixture doubles as a shard generator

            shard_dir = make_shard_dir(
                Path(tmp), s9_profile(args.reader_samples), samples_per_shard=1000, payload_bytes=args.payload_bytes
            )
        else:
            scale = 1.0
        sampling = args.reader_sampling or f"rus:{max(1, round(15000 * scale))}"
        readers = bench_reader(shard_dir, sampling, args.repeats)
    ours = planning.pop("ours")
    write_result("sampling", {"planning": planning["plan_seconds"], "readers": readers, "samples": args.samples},
                 {"python_seconds_scaled": planning["python_seconds_scaled"],
                  "multinomial_seconds": planning["multinomial_seconds"],
                  "multinomial_worst_class_error": planning["multinomial_worst_class_error"]},
                 {"plan_vs_python": planning["python_seconds_scaled"] / ours,
                  "plan_vs_multinomial": planning["multinomial_seconds"] / ours},
                 config={"samples": args.samples, "reader_samples": args.reader_samples, "repeats": args.repeats},
                 ci=args.ci)


if __name__ == "__main__":
    main()
