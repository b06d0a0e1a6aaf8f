"""Phase-2 methods (`camtrap-fast heads`) on cached features: each method's fit against a plain PyTorch version of
the same method, in one run, at the demo's scale and at Snapshot Serengeti season-9 scale.

    python bench/phase2_methods.py [--run demo/runs/two-phase] [--epochs 30] [--repeats 3] [--baseline-epochs 2]
                                   [--skip-s9] [--json FILE]

Demo scale: the run's feature cache (RUN/features) and phase-1 layer, the run's HeadConfig. First every method
as `heads` runs it (early stopping on; target: all seven <= 10 s), then each against its plain version.
S9 scale: 155,254 x 512 fp16 training features and 19,377 val features (bench/phase2_head.py's
`structured_features`, season-9 train and test counts), 52 classes; the phase-1 layer is one untimed epoch
of retraining from a random layer. Targets: each post-hoc method (tau-norm and logit adjustment with their
41-point tau sweeps, NCM) <= 1 s; each gradient method within the head-training target (bench/README.md).

Gradient methods run --epochs epochs with early stopping off (the same work for both sides); the plain loop
(train.head_reference: nn.Linear or an nn.Parameter of scales, the loss module, autograd, torch.optim.Adam,
the same batches) is timed for --baseline-epochs epochs and scaled linearly, since every epoch costs the same.
Plain post-hoc versions: per tau, the full fp32 val matmul with the transformed layer, argmax and scikit-learn's
macro F1; NCM: F.normalize, a boolean mask and .mean() per class. Median of --repeats (1 for S9 gradient runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from phase2_head import COUNTS, FALLBACK_COUNTS, structured_features  # noqa: E402
from results import write_result  # noqa: E402

from camtrap_fast.environment import machine, package_versions  # noqa: E402
from camtrap_fast.model import split_backbone_head  # noqa: E402
from camtrap_fast.train.head_config import PHASE2_METHODS, HeadConfig  # noqa: E402
from camtrap_fast.train.head_reference import train_head_reference, train_lws_reference  # noqa: E402
from camtrap_fast.train.head_training import train_head  # noqa: E402
from camtrap_fast.train.parallelism import torch_threads  # noqa: E402
from camtrap_fast.train.heads.contract import HeadInputs  # noqa: E402
from camtrap_fast.train.heads.gradient import balanced_epochs, balanced_softmax_offset, fresh_head  # noqa: E402
from camtrap_fast.train.heads.posthoc import TAU_GRID, log_priors  # noqa: E402
from camtrap_fast.train.heads.registry import GRADIENT_METHODS, POSTHOC_METHODS, fit_method  # noqa: E402
from camtrap_fast.train.rundir import Run  # noqa: E402

DEMO_TARGET_SECONDS = 10.0
POSTHOC_TARGET_SECONDS = 1.0


def plain_gradient(method: str, inputs: HeadInputs, epochs: int) -> None:
    """The method the plain way for `epochs` epochs (train.head_reference), the same batches as the fused fit."""
    config, x, y = inputs.config, inputs.train_features, inputs.train_labels
    if method == "retrain":
        train_head_reference(inputs.head, x, y, config, epochs, inputs.loss, inputs.seed)
    elif method == "balanced-softmax":
        train_head_reference(inputs.head, x, y, config, epochs, seed=inputs.seed,
                             logit_offset=balanced_softmax_offset(inputs.train_counts()))
    else:
        order_for_epoch, _ = balanced_epochs(y, inputs.num_classes, inputs.seed)
        if method == "crt":
            head = fresh_head(inputs.head.in_features, inputs.num_classes, inputs.seed)
            train_head_reference(head, x, y, config, epochs, order_for_epoch=order_for_epoch)
        else:
            train_lws_reference(inputs.head, x, y, config, epochs, order_for_epoch=order_for_epoch)


def plain_posthoc(method: str, inputs: HeadInputs) -> None:
    from sklearn.metrics import f1_score

    weight, bias = inputs.head.weight.detach().float(), inputs.head.bias.detach().float()
    with torch_threads(inputs.config.num_threads, torch.device("cpu")), torch.no_grad():
        if method == "ncm":
            features = nn.functional.normalize(inputs.train_features.float(), dim=1)
            means = torch.stack([features[inputs.train_labels == c].mean(0) for c in range(inputs.num_classes)])
            nn.functional.normalize(means, dim=1)
            return
        truth = inputs.val_labels.numpy()
        for tau in TAU_GRID:
            if method == "tau-norm":
                logits = nn.functional.linear(inputs.val_features.float(), weight / weight.norm(dim=1, keepdim=True) ** tau)
            else:
                logits = nn.functional.linear(inputs.val_features.float(), weight, bias - tau * log_priors(
                    inputs.train_counts()))
            f1_score(truth, logits.argmax(1).numpy(), average="macro", zero_division=0)


def timed(function, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def compare(label: str, inputs: HeadInputs, epochs: int, baseline_epochs: int, repeats: int,
            gradient_repeats: int) -> dict:
    """Every method, fused vs plain, patience off for the gradient methods; prints a table, returns the figures."""
    fixed = dataclasses.replace(inputs, config=dataclasses.replace(inputs.config, epochs=epochs, patience=None))
    rows = {}
    print(f"\n{label}: fused vs plain ({epochs} epochs, no early stopping, for the gradient methods)", flush=True)
    print(f"  {'method':<18}{'ours s':>9}{'plain s':>10}{'ratio':>8}   (ours: all runs; plain per-epoch x {epochs})")
    for method in PHASE2_METHODS:
        n = gradient_repeats if method in GRADIENT_METHODS else repeats
        fit_method(method, dataclasses.replace(fixed, config=dataclasses.replace(fixed.config, epochs=1)))  # warm-up
        ours = timed(lambda: fit_method(method, fixed), n)
        if method in GRADIENT_METHODS:
            plain = [s / baseline_epochs * epochs for s in timed(lambda: plain_gradient(method, fixed, baseline_epochs), n)]
        else:
            plain = timed(lambda: plain_posthoc(method, fixed), n)
        ours_s, plain_s = statistics.median(ours), statistics.median(plain)
        rows[method] = {"ours_seconds": round(ours_s, 4), "ours_all": [round(s, 4) for s in ours],
                        "plain_seconds": round(plain_s, 4), "plain_all": [round(s, 4) for s in plain],
                        "ratio": round(plain_s / ours_s, 2)}
        runs = "/".join(f"{s:.3f}" for s in ours)
        print(f"  {method:<18}{ours_s:>9.4f}{plain_s:>10.3f}{plain_s / ours_s:>7.1f}x   ({runs})", flush=True)
    return rows


def demo_inputs(run_dir: Path) -> HeadInputs:
    run = Run(run_dir)
    model, config, _ = run.load_model(torch.device("cpu"), phase=1)
    caches = {s: torch.load(run.features_dir / f"{s}.pt", weights_only=True) for s in ("train", "val")}
    _, head = split_backbone_head(model)
    return HeadInputs(head, caches["train"]["features"], caches["train"]["labels"], caches["val"]["features"],
                      caches["val"]["labels"], config.head, config.loss, config.seed)


def s9_inputs(dim: int = 512) -> HeadInputs:
    data = json.loads((COUNTS if COUNTS.is_file() else FALLBACK_COUNTS).read_text())
    names = list(data["train"])
    train_x, train_y = structured_features([data["train"][n] for n in names], dim, torch.float16, seed=0)
    val_x, val_y = structured_features([data["test"].get(n, 0) for n in names], dim, torch.float16, seed=1)
    torch.manual_seed(0)
    head = nn.Linear(dim, len(names))
    phase1 = train_head(head, train_x, train_y, None, None, HeadConfig(epochs=1, patience=None))
    head.load_state_dict(phase1.head_state)
    return HeadInputs(head, train_x, train_y, val_x, val_y, HeadConfig(), seed=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("demo/runs/two-phase"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-epochs", type=int, default=2)
    parser.add_argument("--s9-gradient-repeats", type=int, default=1)
    parser.add_argument("--skip-s9", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--ci", action="store_true", help="the CI size: bench/ci_run.py's small run, 1 repeat, no S9")
    args = parser.parse_args()
    if args.ci:
        from ci_run import ci_run

        args.run, args.repeats, args.baseline_epochs, args.skip_s9 = ci_run(), 1, 1, True
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    results: dict = {"machine": machine(), "versions": package_versions(), "load_average_start": os.getloadavg()}

    demo = demo_inputs(args.run)
    print(f"demo: {args.run}: {tuple(demo.train_features.shape)} train, {len(demo.val_labels)} val features, "
          f"{demo.num_classes} classes", flush=True)
    for method in PHASE2_METHODS:  # warm-up (lazy imports, first-call kernels)
        fit_method(method, demo)
    as_heads = {m: statistics.median(timed(lambda: fit_method(m, demo), args.repeats)) for m in PHASE2_METHODS}
    total = sum(as_heads.values())
    print("demo, as `heads` runs them (early stopping on): " + ", ".join(f"{m} {s:.3f} s" for m, s in as_heads.items())
          + f"; all seven {total:.2f} s (target <= {DEMO_TARGET_SECONDS:.0f} s: "
          f"{'met' if total <= DEMO_TARGET_SECONDS else 'MISSED'})", flush=True)
    results["demo_as_heads_seconds"] = {m: round(s, 4) for m, s in as_heads.items()}
    results["demo_all_seconds"] = round(total, 3)
    results["demo"] = compare("demo", demo, args.epochs, args.baseline_epochs, args.repeats, args.repeats)

    if not args.skip_s9:
        s9 = s9_inputs()
        print(f"\nS9 scale: {tuple(s9.train_features.shape)} fp16 train, {len(s9.val_labels)} val features, "
              f"{s9.num_classes} classes, batch {s9.config.batch_size}", flush=True)
        results["s9"] = compare("S9", s9, args.epochs, args.baseline_epochs, args.repeats, args.s9_gradient_repeats)
        for method in POSTHOC_METHODS:
            seconds = results["s9"][method]["ours_seconds"]
            print(f"  {method}: {seconds:.3f} s (target <= {POSTHOC_TARGET_SECONDS:.0f} s: "
                  f"{'met' if seconds <= POSTHOC_TARGET_SECONDS else 'MISSED'})")
    results["load_average_end"] = os.getloadavg()
    rows = results["s9"] if "s9" in results else results["demo"]
    posthoc = ("tau-norm", "logit-adjust")
    write_result("phase2_methods", {m: {"seconds": r["ours_seconds"], "all": r["ours_all"]} for m, r in rows.items()}
                 | {"scale": "s9" if "s9" in results else "demo", "demo_all_seconds": results["demo_all_seconds"]},
                 {m: {"seconds": r["plain_seconds"]} for m, r in rows.items()},
                 {"retrain_vs_plain": rows["retrain"]["ratio"],
                  "posthoc_vs_plain": sum(rows[m]["plain_seconds"] for m in posthoc)
                  / sum(rows[m]["ours_seconds"] for m in posthoc)},
                 config={"run": str(args.run), "epochs": args.epochs, "repeats": args.repeats,
                         "baseline_epochs": args.baseline_epochs}, ci=args.ci)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
