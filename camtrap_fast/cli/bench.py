"""`camtrap-fast bench loader SHARDS`: images/s of the train loader over whole epochs, and what it emitted per class.

The epoch orders come from the sampler (`--sampling`), exactly as training
would draw them, so the per-class counts show what a regime feeds the model. A
short warm-up (pipeline build, worker start, page cache) runs first and is not
timed; each timed epoch includes its own start-up, as in training.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from camtrap_fast.errors import UserError

WARMUP_BATCHES = 2


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure one stage of the pipeline (loader)",
        description="Measure one stage of the pipeline on your data and machine.",
    )
    stages = parser.add_subparsers(dest="stage", metavar="STAGE")
    stages.required = True
    loader = stages.add_parser(
        "loader",
        help="images/s of the train loader over whole epochs, and images emitted per class",
        description="Run the train loader (decode, random resized crop, flip, normalize on the device) over whole "
        f"epochs drawn by the sampler; print images/s (after a {WARMUP_BATCHES}-batch warm-up that is not timed) "
        "and the images emitted per class.",
    )
    loader.add_argument("shards", type=Path, metavar="SHARDS", help="a `camtrap-fast shard` output directory")
    loader.add_argument("--backend", default="auto", choices=("auto", "dali", "pil"),
                        help="auto (default): DALI on CUDA when installed, else PIL")
    loader.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    loader.add_argument("--sampling", default="none", metavar="SPEC",
                        help="sampling regime, as for `camtrap-fast plan` (default none: every image once)")
    loader.add_argument("--batch-size", type=int, default=64)
    loader.add_argument("--epochs", type=int, default=1)
    loader.add_argument("--split", default="train", choices=("train", "val", "test"))
    loader.add_argument("--image-size", type=int, default=224, help="output side in pixels (default 224)")
    loader.add_argument("--workers", type=int, help="PIL worker processes / DALI threads (default: CPUs, at most 16)")
    loader.add_argument("--seed", type=int, default=0)
    loader.add_argument("--skip-corrupt", action="store_true", help="skip and count samples that cannot be decoded")
    loader.add_argument("--json", action="store_true",
                        help="print only JSON: images, seconds, images_per_s, class_counts")
    loader.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.sampling import epoch_order, parse_sampling, plan_sampling
    from camtrap_fast.shards.manifest import load_manifest

    if args.epochs < 1:
        raise UserError(f"--epochs {args.epochs}: must be at least 1")
    manifest = load_manifest(args.shards)  # before torch: a wrong path answers at once
    spec = parse_sampling(args.sampling)
    import torch

    from camtrap_fast.pipelines import LoaderConfig, make_loader

    index = manifest.load_index(args.split)
    counts = index.class_counts(manifest.num_classes)
    plan = plan_sampling(dict(zip(manifest.classes, counts.tolist())), spec)
    options = dict(mode="train", backend=args.backend, device=args.device, batch_size=args.batch_size,
                   image_size=args.image_size, seed=args.seed, skip_corrupt=args.skip_corrupt)
    if args.workers is not None:
        options["workers"] = args.workers
    try:
        config = LoaderConfig(**options)
    except ValueError as error:
        raise UserError(str(error)) from None
    loader = make_loader(manifest, args.split, config)
    device = loader.device

    warmup = epoch_order(index.labels, plan, args.seed, 0)[: WARMUP_BATCHES * config.batch_size]
    for _ in loader.epoch(warmup, 0):  # a whole (short) epoch, so no pipeline is left half-way
        pass
    emitted = torch.zeros(manifest.num_classes, dtype=torch.int64, device=device)
    _synchronize(device)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = epoch_order(index.labels, plan, args.seed, epoch)  # drawn inside the timing, as training does
        for _, labels in loader.epoch(order, epoch):
            emitted += torch.bincount(labels, minlength=manifest.num_classes)  # on the device: no sync per batch
    _synchronize(device)
    seconds = time.perf_counter() - start
    class_counts = dict(zip(manifest.classes, emitted.cpu().tolist()))
    images = int(sum(class_counts.values()))
    result = {"images": images, "seconds": round(seconds, 4), "images_per_s": round(images / seconds, 1),
              "class_counts": class_counts}
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"bench loader: backend {loader.backend}, device {device}, {config.workers} workers, "
        f"batch {config.batch_size}, {config.image_size} px, sampling {spec.text}, split {args.split} ({len(index)} samples)"
    )
    skipped = f", {loader.skipped} corrupt skipped" if loader.skipped else ""
    print(
        f"{args.epochs} epoch(s) after a {WARMUP_BATCHES}-batch warm-up (not timed): {images} images in "
        f"{seconds:.2f} s = {result['images_per_s']:.0f} images/s{skipped}"
    )
    width = max(len("class"), *map(len, manifest.classes))
    print(f"{'class':<{width}} {'in split':>9} {'emitted':>9}")
    for name, n, k in zip(manifest.classes, counts.tolist(), class_counts.values()):
        print(f"{name:<{width}} {n:>9} {k:>9}")
    return 0


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
