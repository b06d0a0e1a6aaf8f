"""`camtrap-fast train SHARDS --out RUN`: a baseline, or two-phase training with a cached-feature phase 2."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a species classifier (baseline, or --two-phase) and write per-species reports",
        description="Phase 1 trains every layer on the --sampling plan; with --two-phase, phase 2 freezes the "
        "backbone, caches its features once and retrains the final layer on the original, imbalanced data.",
    )
    parser.add_argument("shards", type=Path, help="a `camtrap-fast shard` output folder")
    parser.add_argument("--out", type=Path, required=True, help="run directory to create (or continue with --resume)")
    parser.add_argument("--two-phase", action="store_true", help="add phase 2: retrain the final layer on cached features")
    parser.add_argument("--sampling", default="none", help="phase-1 rebalancing, e.g. paper-ros-rus-15k or ros:50,rus:150")
    parser.add_argument("--ros-ratios", default=None, help="ROS schedule, e.g. 100:10,500:8,1000:6,inf:4")
    parser.add_argument("--arch", default="resnet18", help="any torchvision classification model (default resnet18)")
    parser.add_argument("--weights", type=Path, default=None, help="start from this state-dict file (random init if omitted)")
    parser.add_argument("--loss", default="ce", help="ce (default), focal or weighted-ce")
    parser.add_argument("--focal-gamma", type=float, default=2.0)
    parser.add_argument("--focal-alpha", default=None, help="a number, or inverse-frequency")
    parser.add_argument("--class-weights", default="inverse-frequency", help="weighted-ce: inverse-frequency or effective-number")
    parser.add_argument("--epochs", type=int, default=30, help="maximum phase-1 epochs (default 30)")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience on validation macro-F1")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--head-epochs", type=int, default=30, help="maximum phase-2 epochs (default 30)")
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--head-patience", type=int, default=5)
    parser.add_argument("--backend", default="auto", help="auto, dali or pil")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--image-size", type=int, default=224, help="crop size in pixels (default 224)")
    parser.add_argument("--crop-scale-min", type=float, default=0.08, help="random-resized-crop minimum area")
    parser.add_argument("--workers", type=int, default=2, help="loader workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    parser.add_argument("--compare", type=Path, default=None, help="a baseline run to compare per-species F1 with")
    parser.add_argument("--stream-from", default=None, metavar="URL_PREFIX",
                        help="read the train shards sequentially from URL_PREFIX/train/shard-*.tar (http(s)://, s3://, "
                        "pipe:); SHARDS still supplies the manifest and index")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.train import TrainConfig, train

    config = TrainConfig(
        shards=args.shards, out=args.out, two_phase=args.two_phase, arch=args.arch, weights=args.weights,
        sampling=args.sampling, ros_ratios=args.ros_ratios, loss=args.loss, focal_gamma=args.focal_gamma,
        focal_alpha=args.focal_alpha, class_weights=args.class_weights, epochs=args.epochs, patience=args.patience,
        lr=args.lr, batch_size=args.batch_size, head_epochs=args.head_epochs, head_lr=args.head_lr,
        head_patience=args.head_patience, backend=args.backend, device=args.device, image_size=args.image_size,
        crop_scale_min=args.crop_scale_min, workers=args.workers, seed=args.seed, resume=args.resume,
        compare=args.compare, stream_from=args.stream_from,
    )
    summary = train(config, progress=not args.quiet)
    if summary:
        print(format_summary(summary, args.out))
    return 0


def format_summary(summary: dict, run: Path) -> str:
    lines = [f"{'':<10}{'accuracy':>10}{'macro-F1':>10}"]
    for name in ("baseline", "phase1", "phase2"):
        if name in summary:
            lines.append(f"{name:<10}{summary[name]['accuracy']:>10.3f}{summary[name]['macro_f1']:>10.3f}")
    lines.append(f"reports: {run}/phase1" + (f", {run}/phase2" if "phase2" in summary else ""))
    return "\n".join(lines)
