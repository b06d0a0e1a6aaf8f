"""Phase-2 head training on cached features: train_head against the loop of only its matmuls and against the
naive loop, in one run.

    python bench/phase2_head.py [--epochs 30] [--repeats 3] [--baseline-epochs 2] [--threads 2] [--json] [--ci]

Features: 155,254 x 512 (Snapshot Serengeti season 9 train counts, 52 classes), class means plus noise,
stored as fp16 like the feature cache; validation: the season's 19,377 test counts, same recipe.
head: train_head for --epochs epochs (patience off, so every epoch runs; validation after each epoch, as phase 2
runs), median of --repeats after a short warm-up, through its compiled steps (train/headloop.c) when built, with
its row toucher where a core is spare (a helper thread that reads each next step's rows; timed once without it). The
features are first moved into huge pages, as train_head's first call on them does; that one-time move is timed on
its own (huge_pages_seconds_once) and every loop below runs on the moved features.
matmul-only: the same epochs' batches (the same shuffles, gathered the same way, untimed) through nothing but
each step's two matmuls: the compiled loop's own (its tiles, on its threads: the matmuls the steps run, so the
figure the target divides) and, for reference, torch.mm on as many threads (where the compiled loop is not built
the steps run torch.mm, and the target divides that).
torch loop: train_head's torch steps (its fallback), per epoch, scaled. Naive: per batch, features[batch] ->
nn.Linear -> CrossEntropyLoss -> backward -> torch.optim.Adam.step() (train_head_reference), the same order
and math, timed for --baseline-epochs epochs and scaled to --epochs, since every epoch costs the same.
--json prints one JSON line of the figures; every run writes bench/results/phase2_head.json.
--ci: 3 epochs, 1 repeat, 1 baseline epoch, 1 thread (figures scaled to 30 epochs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import camtrap_fast.train.head_training as head_training  # noqa: E402
from camtrap_fast.train import headloop  # noqa: E402
from camtrap_fast.train.head_config import HeadConfig  # noqa: E402
from camtrap_fast.train.head_reference import train_head_reference  # noqa: E402
from camtrap_fast.train.head_training import _FusedHead, _LossTerms, shuffled_order, train_head  # noqa: E402
from camtrap_fast.train.parallelism import torch_threads  # noqa: E402
from camtrap_fast.train.huge_pages import move_to_huge_pages  # noqa: E402
from results import machine_line, write_result  # noqa: E402

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


def matmul_only(head, features, labels, config: HeadConfig, epochs: int, seed: int, compiled: bool) -> float:
    """Seconds of only the steps' two matmuls over train_head's batches (gathering untimed). compiled: the compiled
    loop's own matmuls, each batch gathered as its steps gather it (fp16 rows into its fp16 batch buffer; the clock
    runs in C around the matmuls alone); else torch.mm over the chunk buffer, as the torch loop's steps run it."""
    cpu = torch.device("cpu")
    # torch.mm on as many threads as the compiled loop uses: the same cores for both loops
    with torch_threads(headloop.threads_for(config.num_threads), cpu), torch.no_grad():
        trainer = _FusedHead(head, config, _LossTerms(), cpu)
        trainer.dlogits.normal_(0.0, 0.01)  # the matmuls read dlogits as they are
        loop = headloop.load() if compiled else None
        if compiled and (loop is None or not loop.gathers(features)):
            return float("nan")
        weight_t, chunk, seconds = trainer.weight.t(), len(trainer.inputs), 0.0
        for epoch in range(1, epochs + 1):
            order = shuffled_order(len(labels), seed, epoch)
            for start in range(0, len(order), chunk):
                indices = order[start : start + chunk]
                if loop is not None:
                    seconds += loop.matmuls_timed(features, indices, trainer.inputs, trainer.logits, trainer.dlogits,
                                                  trainer.theta, trainer.grad, len(indices), config.batch_size,
                                                  trainer.compiled_threads)
                    continue
                n = trainer._load_chunk(features, labels, indices)
                batches = trainer.full_chunk_batches if n == chunk else trainer._batch_views(n)
                began = time.perf_counter()
                for inputs, _, logits, _, dlogits_t, _ in batches:
                    torch.mm(inputs, weight_t, out=logits)
                    torch.mm(dlogits_t, inputs, out=trainer.grad_w)
                seconds += time.perf_counter() - began
    return seconds


def torch_threads_label(threads: int | None) -> str:
    compiled = headloop.threads_for(threads) if headloop.load() else 0
    return f"{threads or 1} torch thread(s), compiled loop on {compiled} thread(s)"


def timed_head(head, train_x, train_y, val_x, val_y, config, compiled: bool,
               row_toucher: bool = True) -> tuple[float, float, object]:
    head_training.COMPILED_LOOP, head_training.ROW_TOUCHER = compiled, row_toucher
    try:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = train_head(head, train_x, train_y, val_x, val_y, config)
        return time.perf_counter() - start, time.process_time() - start_cpu, result
    finally:
        head_training.COMPILED_LOOP, head_training.ROW_TOUCHER = True, True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-epochs", type=int, default=2)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    parser.add_argument("--threads", type=int, default=None,
                        help="HeadConfig.num_threads in every loop (default: HeadConfig's, 1 torch thread and the "
                             "compiled loop's 2; --ci: 1, the steadier)")
    parser.add_argument("--json", action="store_true", help="print one JSON line of the figures")
    parser.add_argument("--ci", action="store_true", help="the CI size: 3 epochs, 1 repeat, 1 baseline epoch")
    args = parser.parse_args()
    if args.ci:
        args.epochs, args.repeats, args.baseline_epochs, args.threads = 3, 1, 1, 1
    say = (lambda *a, **k: print(*a, **k, file=sys.stderr)) if args.json else print

    source = COUNTS if COUNTS.is_file() else FALLBACK_COUNTS
    data = json.loads(source.read_text())
    names = list(data["train"])
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    train_x, train_y = structured_features([data["train"][n] for n in names], args.dim, dtype, seed=0)
    val_x, val_y = structured_features([data["test"].get(n, 0) for n in names], args.dim, dtype, seed=1)
    torch.manual_seed(0)
    head = torch.nn.Linear(args.dim, len(names))
    config = HeadConfig(epochs=args.epochs, patience=None, num_threads=args.threads)
    steps_per_epoch = -(-len(train_y) // config.batch_size)
    scale = 30 / args.epochs
    say(machine_line(f"{torch_threads_label(args.threads)}"), flush=True)
    say(f"features {tuple(train_x.shape)} {args.dtype}, val {len(val_y)}, {len(names)} classes, batch "
        f"{config.batch_size}, {args.epochs} epochs ({steps_per_epoch * args.epochs} steps); compiled loop "
        f"{'built' if headloop.load() else 'NOT built: the torch loop runs'}", flush=True)

    # train_head moves the features into huge pages on its first call (train/huge_pages.py), once per tensor: timed
    # here on its own, so that the repeats below all measure the steady state a study's or heads' later calls see.
    began = time.perf_counter()
    huge = move_to_huge_pages(train_x)
    huge_pages_s = time.perf_counter() - began
    say(f"  features moved into huge pages: {huge} ({huge_pages_s:.2f} s, once per features tensor)", flush=True)
    warm = replace(config, epochs=1)
    timed_head(head, train_x[:20000], train_y[:20000], val_x, val_y, warm, True)  # warm-up
    # Each repeat times the head and then, right after it, the compiled matmul-only loop: the VM's speed drifts by up
    # to 25 % over minutes, and a pair seconds apart sees the same machine, where all heads and then all matmul
    # loops (as before 2026-12-02 12:00) put minutes of drift between the two sides of the share.
    heads, heads_cpu, matmul_compiled = [], [], []
    # whether the row toucher ran in the timed heads, from its own count of the steps it read ahead (the same
    # library, so the same counter, whichever load() handed it out)
    loop = headloop.load()
    touched_before = loop.touched_steps() if loop else 0
    for _ in range(args.repeats):
        seconds, cpu_seconds, result = timed_head(head, train_x, train_y, val_x, val_y, config, True)
        heads.append(seconds)
        heads_cpu.append(cpu_seconds)
        matmul_compiled.append(matmul_only(head, train_x, train_y, config, args.epochs, 0, True))
        say(f"  head: {seconds:.2f} s ({cpu_seconds:.2f} s CPU) for {args.epochs} epochs (val macro F1 "
            f"{result.history[0].val_macro_f1:.3f} -> best {result.best_val_macro_f1:.3f}); its compiled matmuls "
            f"alone {matmul_compiled[-1]:.2f} s", flush=True)
    touched = (loop.touched_steps() if loop else 0) - touched_before
    no_val, _, _ = timed_head(head, train_x, train_y, None, None, config, True)
    # what the row toucher gives (headloop.c: a spare core reads each next step's rows): the head without it, once
    no_toucher, _, _ = timed_head(head, train_x, train_y, val_x, val_y, config, True, row_toucher=False)
    matmul_torch = [matmul_only(head, train_x, train_y, config, args.epochs, 0, False) for _ in range(args.repeats)]
    say(f"  matmul only: the compiled loop's own matmuls {statistics.median(matmul_compiled):.2f} s, torch.mm "
        f"{statistics.median(matmul_torch):.2f} s", flush=True)
    # the steps' own matmuls: the compiled loop's tiles where it runs, else torch.mm (the torch loop's)
    matmul_steps = matmul_compiled if headloop.load() is not None else matmul_torch
    baseline_config = replace(config, epochs=args.baseline_epochs)
    torch_loop, _, _ = timed_head(head, train_x, train_y, None, None, baseline_config, False)
    train_head_reference(head, train_x[:20000], train_y[:20000], baseline_config, 1)  # warm-up (lazy imports)
    start = time.perf_counter()
    train_head_reference(head, train_x, train_y, baseline_config, args.baseline_epochs)
    naive = time.perf_counter() - start

    head_s = statistics.median(heads) * scale
    per_epoch = 30 / args.baseline_epochs
    figures = {
        "head_seconds_30_epochs": round(head_s, 3),
        "head_seconds_all": [round(s * scale, 3) for s in heads],
        "head_cpu_seconds_30_epochs": round(statistics.median(heads_cpu) * scale, 3),
        "head_no_validation_seconds_30_epochs": round(no_val * scale, 3),
        "head_no_row_toucher_seconds_30_epochs": round(no_toucher * scale, 3),
        "row_toucher": touched > 0,
        "row_toucher_steps_read_ahead": touched,
        "huge_pages": huge,
        "huge_pages_seconds_once": round(huge_pages_s, 3),
        "matmul_only_seconds_30_epochs": round(statistics.median(matmul_steps) * scale, 3),
        "matmul_only_torch_mm_seconds_30_epochs": round(statistics.median(matmul_torch) * scale, 3),
        "torch_loop_seconds_30_epochs": round(torch_loop * per_epoch, 3),
        "us_per_step": round(head_s / (steps_per_epoch * 30) * 1e6, 1),
        "compiled_loop": headloop.load() is not None,
        "steps_30_epochs": steps_per_epoch * 30,
    }
    baseline = {"naive_seconds_30_epochs": round(naive * per_epoch, 2)}
    # the share: the median of each repeat's matmul-only / head (its pair, run back to back), where the steps run
    # the compiled tiles; else the torch loop's torch.mm against the median head
    shares = [m / h for m, h in zip(matmul_steps, heads)] if matmul_steps is matmul_compiled else []
    figures["matmul_share_of_each_repeat"] = [round(share, 3) for share in shares]
    ratios = {"vs_naive": baseline["naive_seconds_30_epochs"] / head_s,
              "matmul_share": statistics.median(shares) if shares else
              figures["matmul_only_seconds_30_epochs"] / head_s}
    say(f"head (train_head): {head_s:.2f} s for 30 epochs ({figures['us_per_step']:.0f} us/step; target <= "
        f"{TARGET_SECONDS:.0f} s: {'met' if head_s <= TARGET_SECONDS else 'MISSED'}); without validation "
        f"{figures['head_no_validation_seconds_30_epochs']:.2f} s; without the row toucher "
        f"{figures['head_no_row_toucher_seconds_30_epochs']:.2f} s (toucher "
        f"{'read ahead ' + str(touched) + ' steps' if touched else 'did not run: no spare core or no compiled loop'})")
    say(f"matmul only: the steps' own {figures['matmul_only_seconds_30_epochs']:.2f} s (matmul-only / head "
        f"{ratios['matmul_share']:.2f}; target >= 0.75), torch.mm "
        f"{figures['matmul_only_torch_mm_seconds_30_epochs']:.2f} s; torch loop "
        f"{figures['torch_loop_seconds_30_epochs']:.2f} s; naive {baseline['naive_seconds_30_epochs']:.1f} s")
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        write_result("phase2_head", figures, baseline, ratios, ci=args.ci,
                     config={"epochs": args.epochs, "repeats": args.repeats, "threads": args.threads,
                             "dtype": args.dtype, "baseline_epochs": args.baseline_epochs})
    if args.json:
        print(json.dumps({**figures, **baseline, **{f"ratio_{k}": round(v, 3) for k, v in ratios.items()},
                          "load_average": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
