"""Phase 2 with cached features vs running the frozen backbone every epoch, in one run, on the demo data.

Both train the same final layer from the same phase-1 weights, with the same Adam settings,
batch size, epoch count (no early stopping, so the work compared is equal) and eval
transform, on the original (imbalanced) training split; both are scored on the val split.

    python bench/phase2.py [--run demo/runs/two-phase] [--epochs 30]

RUN is a finished two-phase run (`make demo` makes one); its shards are read from its config.
Target: cached >= 20x faster, at the same quality.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_result  # noqa: E402

from camtrap_fast.metrics import compute_metrics  # noqa: E402
from camtrap_fast.model import split_backbone_head  # noqa: E402
from camtrap_fast.pipelines import LoaderConfig, make_loader  # noqa: E402
from camtrap_fast.train import Run  # noqa: E402
from camtrap_fast.train.features import extract_to_cache  # noqa: E402
from camtrap_fast.train.head_config import HeadConfig  # noqa: E402
from camtrap_fast.train.head_training import train_head  # noqa: E402
from camtrap_fast.train.loops import model_layout  # noqa: E402

TARGET_RATIO = 20.0


def backbone_every_epoch(model, head_init: dict, train_loader, n_train, val_loader, n_val, epochs, lr, batch_seed):
    """The naive phase 2: every epoch decodes and runs the frozen backbone again; only the head learns."""
    backbone, head = split_backbone_head(model)
    head.load_state_dict(head_init)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    model.eval()  # BatchNorm frozen, as in the cached path
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    device = torch.device("cpu")
    start = time.perf_counter()
    for epoch in range(epochs):
        order = np.random.default_rng([batch_seed, epoch]).permutation(n_train)
        for inputs, labels in train_loader.epoch(order, epoch):
            with torch.no_grad():
                features = backbone(model_layout(inputs, device))
            loss = torch.nn.functional.cross_entropy(head(features), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    with torch.inference_mode():
        preds, truth = [], []
        for inputs, labels in val_loader.epoch(np.arange(n_val), 0):
            preds.append(model(model_layout(inputs, device)).argmax(1))
            truth.append(labels)
    return seconds, torch.cat(truth).numpy(), torch.cat(preds).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("demo/runs/two-phase"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--naive-epochs", type=int, help="epochs timed for the naive path, scaled to --epochs "
                        "(default: all of them)")
    parser.add_argument("--ci", action="store_true", help="the CI size: bench/ci_run.py's small run, 2 naive epochs "
                        "scaled to 30")
    args = parser.parse_args()
    if args.ci:
        from ci_run import ci_run

        args.run, args.naive_epochs = ci_run(), 2
    naive_epochs = min(args.naive_epochs or args.epochs, args.epochs)
    device = torch.device("cpu")
    run = Run(args.run)
    model, config, classes = run.load_model(device, phase=1)
    manifest = run.manifest()
    sizes = {s: manifest.splits[s].samples for s in ("train", "val")}
    loader_config = dict(mode="eval", backend="pil", device="cpu", batch_size=64, image_size=config.loader.image_size,
                         workers=args.workers)
    loaders = {s: make_loader(manifest, s, LoaderConfig(**loader_config)) for s in sizes}
    _, head = split_backbone_head(model)
    head_init = {k: v.clone() for k, v in head.state_dict().items()}

    # Cached: one backbone pass per split, then the head on tensors.
    backbone, _ = split_backbone_head(model)
    model.eval()
    start = time.perf_counter()
    caches = {s: extract_to_cache(backbone, loaders[s], sizes[s], device, "bench") for s in sizes}
    extraction = time.perf_counter() - start
    result = train_head(head, caches["train"].features, caches["train"].labels, caches["val"].features,
                        caches["val"].labels, HeadConfig(epochs=args.epochs, lr=config.head.lr, batch_size=64,
                                                         patience=None), config.loss, seed=0)
    cached_seconds = extraction + result.seconds
    weight, bias = result.head_state["weight"].float(), result.head_state["bias"].float()
    cached_pred = (caches["val"].features.float() @ weight.T + bias).argmax(1).numpy()
    cached_f1 = compute_metrics(caches["val"].labels.numpy(), cached_pred, classes).macro_f1

    naive_seconds, truth, naive_pred = backbone_every_epoch(model, head_init, loaders["train"], sizes["train"],
                                                            loaders["val"], sizes["val"], naive_epochs,
                                                            config.head.lr, 0)
    naive_seconds *= args.epochs / naive_epochs  # every epoch costs the same
    naive_f1 = compute_metrics(truth, naive_pred, classes).macro_f1

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"data: {args.run} ({sizes['train']} train / {sizes['val']} val images at {config.loader.image_size} px, "
          f"{len(classes)} classes), {args.epochs} head epochs, no early stopping")
    print(f"{'phase 2':<34}{'seconds':>10}{'val macro-F1':>14}")
    print(f"{'backbone every epoch (naive)':<34}{naive_seconds:>10.1f}{naive_f1:>14.3f}")
    print(f"{'cached features: extraction':<34}{extraction:>10.2f}")
    print(f"{'cached features: head training':<34}{result.seconds:>10.2f}")
    print(f"{'cached features: total':<34}{cached_seconds:>10.2f}{cached_f1:>14.3f}")
    ratio = naive_seconds / cached_seconds
    print(f"speed-up: {ratio:.1f}x ({'meets' if ratio >= TARGET_RATIO else 'MISSES'} the {TARGET_RATIO:.0f}x target); "
          f"macro-F1 difference {cached_f1 - naive_f1:+.3f}"
          + (f" (naive path: {naive_epochs} epochs timed, scaled to {args.epochs}; its F1 after those)"
             if naive_epochs != args.epochs else ""))
    write_result("phase2", {"extraction_seconds": round(extraction, 3), "head_seconds": round(result.seconds, 3),
                            "cached_seconds": round(cached_seconds, 3), "cached_val_macro_f1": round(cached_f1, 4),
                            "train_images": sizes["train"], "val_images": sizes["val"]},
                 {"backbone_every_epoch_seconds": round(naive_seconds, 2), "val_macro_f1": round(naive_f1, 4),
                  "epochs_timed": naive_epochs},
                 {"cached_vs_backbone": ratio},
                 config={"run": str(args.run), "epochs": args.epochs, "workers": args.workers}, ci=args.ci)


if __name__ == "__main__":
    main()
