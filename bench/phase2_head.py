"""Phase-2 head training on cached features: train_head vs the naive loop, and its private torch ops vs the
public ones, in one run.

    python bench/phase2_head.py [--epochs 30] [--repeats 3] [--baseline-epochs 2] [--dtype fp16] [--threads N]

Features: 155,254 x 512 (Snapshot Serengeti season 9 train counts, 52 classes), class means plus noise,
stored as fp16 like the feature cache; validation: the season's 19,377 test counts, same recipe.
Fused: train_head for --epochs epochs (patience off, so every epoch runs), median of --repeats after a
short warm-up. Naive: per batch, features[batch] -> nn.Linear -> CrossEntropyLoss -> backward ->
torch.optim.Adam.step(), the same order and math (train_head_reference), timed for --baseline-epochs
epochs (median of --repeats) and scaled linearly to --epochs, since every epoch costs the same.
Public ops: the same fused loop with torch.softmax(out=) and torch.optim.Adam(fused=True).step() in place
of the private torch._softmax and torch._fused_adam_ (HeadConfig.public_ops), timed for --baseline-epochs
epochs and scaled the same way: the figure that decides whether the private ops are worth keeping.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from camtrap_fast.environment import machine, package_versions  # noqa: E402
from camtrap_fast.train.head_config import HeadConfig  # noqa: E402
from camtrap_fast.train.head_reference import train_head_reference  # noqa: E402
from camtrap_fast.train.head_training import train_head  # noqa: E402

COUNTS = REPO.parent / "shared" / "data" / "serengeti-s9-class-counts.json"
FALLBACK_COUNTS = REPO / "camtrap_fast" / "data" / "serengeti_s9_class_counts.json"
TARGET_SECONDS = 5.0


def structured_features(counts: list[int], dim: int, dtype: torch.dtype, seed: int):
    """Rows = class mean + unit noise, ReLU'd like pooled ResNet features; labels in shuffled order."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    labels = labels[torch.randperm(len(labels), generator=generator)]
    means = torch.randn(len(counts), dim, generator=torch.Generator().manual_seed(1234)) * 0.15
    features = torch.randn(len(labels), dim, generator=generator).add_(means[labels]).relu_()
    return features.to(dtype), labels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-epochs", type=int, default=2)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in both loops (default 1, train_head's default)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    source = COUNTS if COUNTS.is_file() else FALLBACK_COUNTS
    data = json.loads(source.read_text())
    names = list(data["train"])
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    train_x, train_y = structured_features([data["train"][n] for n in names], args.dim, dtype, seed=0)
    val_x, val_y = structured_features([data["test"].get(n, 0) for n in names], args.dim, dtype, seed=1)
    torch.manual_seed(0)
    head = torch.nn.Linear(args.dim, len(names))
    config = HeadConfig(epochs=args.epochs, patience=None, num_threads=args.threads)
    print(f"features {tuple(train_x.shape)} {args.dtype}, val {len(val_y)}, {len(names)} classes, "
          f"batch {config.batch_size}, {args.epochs} epochs; torch {torch.__version__}, "
          f"{config.num_threads or 1} torch threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()})",
          flush=True)

    train_head(head, train_x[:20000], train_y[:20000], val_x, val_y, replace(config, epochs=1))  # warm-up
    fused, fused_cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = train_head(head, train_x, train_y, val_x, val_y, config)
        fused.append(time.perf_counter() - start)
        fused_cpu.append(time.process_time() - start_cpu)
        print(f"  fused: {fused[-1]:.2f} s ({fused_cpu[-1]:.2f} s CPU) for {args.epochs} epochs "
              f"(val macro F1 {result.history[0].val_macro_f1:.3f} -> best {result.best_val_macro_f1:.3f} "
              f"at epoch {result.best_epoch})", flush=True)

    baseline_config = replace(config, epochs=args.baseline_epochs)
    public_config = replace(baseline_config, public_ops=True)
    train_head(head, train_x[:20000], train_y[:20000], None, None, replace(public_config, epochs=1))  # warm-up
    public = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        public_result = train_head(head, train_x, train_y, None, None, public_config)
        public.append((time.perf_counter() - start) / args.baseline_epochs)
        print(f"  fused, public ops: {public[-1]:.2f} s per epoch", flush=True)
    private_check = train_head(head, train_x, train_y, None, None, baseline_config)
    same = torch.equal(public_result.head_state["weight"], private_check.head_state["weight"])
    print(f"  public and private ops give {'identical' if same else 'DIFFERENT'} weights", flush=True)

    train_head_reference(head, train_x[:20000], train_y[:20000], baseline_config, 1)  # warm-up (lazy imports)
    naive, naive_cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        train_head_reference(head, train_x, train_y, baseline_config, args.baseline_epochs)
        naive.append((time.perf_counter() - start) / args.baseline_epochs)
        naive_cpu.append((time.process_time() - start_cpu) / args.baseline_epochs)
        print(f"  naive: {naive[-1]:.2f} s ({naive_cpu[-1]:.2f} s CPU) per epoch", flush=True)

    fused_s = statistics.median(fused)
    naive_s = statistics.median(naive) * args.epochs
    summary = {
        "fused_seconds": round(fused_s, 3),
        "fused_seconds_all": [round(s, 3) for s in fused],
        "fused_cpu_seconds": round(statistics.median(fused_cpu), 3),
        "naive_seconds_scaled": round(naive_s, 2),
        "naive_seconds_per_epoch_all": [round(s, 3) for s in naive],
        "naive_cpu_seconds_scaled": round(statistics.median(naive_cpu) * args.epochs, 2),
        "ratio": round(naive_s / fused_s, 2),
        "public_ops_seconds_scaled": round(statistics.median(public) * args.epochs, 2),
        "public_ops_ratio": round(statistics.median(public) * args.epochs / fused_s, 2),
        "public_ops_identical": same,
        "steps": -(-len(train_y) // config.batch_size) * args.epochs,
        "epochs": args.epochs,
        "dtype": args.dtype,
        "threads": config.num_threads or 1,
        "load_average": os.getloadavg(),
        "machine": machine(),
        "versions": package_versions(),
    }
    print(f"fused train_head: {fused_s:.2f} s median of {args.repeats} (range {min(fused):.2f}-{max(fused):.2f}), "
          f"{fused_s / summary['steps'] * 1e6:.0f} us/step; target <= {TARGET_SECONDS:.0f} s")
    print(f"public torch ops: {summary['public_ops_seconds_scaled']:.1f} s (per-epoch median x {args.epochs}): "
          f"{summary['public_ops_ratio']:.2f}x the private ops' time, {'identical' if same else 'different'} weights")
    print(f"naive loop:       {naive_s:.1f} s (per-epoch median x {args.epochs})")
    cpu_ratio = summary["naive_cpu_seconds_scaled"] / summary["fused_cpu_seconds"]
    print(f"ratio:            {summary['ratio']:.1f}x (CPU time: {cpu_ratio:.1f}x)")
    print(f"load average:     {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
