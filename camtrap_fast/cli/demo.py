"""`camtrap-fast demo`: the whole job on the built-in synthetic data, on CPU, in minutes.

synth (with a simulated MegaDetector run) -> shard -> a baseline run -> a two-phase run (ROS & RUS with
the study's 5k/15k caps scaled to the demo's size) -> the same two-phase run on MegaDetector crops -> a
side-by-side table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="synthesize demo data, shard it, train baseline and two-phase models",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("demo"), help="where images, shards and runs go")
    parser.add_argument("--scale", type=float, default=0.01, help="fraction of season-9 class sizes (default 0.01)")
    parser.add_argument("--image-size", type=int, default=64, help="training crop in pixels (default 64)")
    parser.add_argument("--epochs", type=int, default=8, help="maximum phase-1 epochs per run (default 8)")
    parser.add_argument("--backend", default="auto", help="auto, dali or pil")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader workers and shard processes (default auto: see `train --help`)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-crops", action="store_true",
                        help="skip the run on MegaDetector crops (whole frames only, as before)")
    parser.set_defaults(func=run)


def scaled_sampling(train_images: int) -> tuple[str, str]:
    """The study's ROS&RUS-15k regime, caps and ROS bands scaled by demo size / season-9 size (--sampling and
    --ros-ratios texts)."""
    from camtrap_fast.sampling.scale import scale_factor, scale_spec
    from camtrap_fast.sampling.spec import parse_sampling

    spec = scale_spec(parse_sampling("paper-ros-rus-15k"), scale_factor(train_images))
    return spec.text, spec.ros_ratios_text


def run(args: argparse.Namespace) -> int:
    import shutil

    from camtrap_fast.synth import SynthConfig
    from camtrap_fast.train.options import config_from_args

    # Every option is checked before torch is imported and before four minutes of synthesis: a mistake answers
    # at once. The train options are checked against a stand-in shard folder (the demo's does not exist yet).
    synth_config = SynthConfig(out_dir=args.workdir / "images", scale=args.scale, seed=args.seed, overwrite=True,
                               detections=True)
    config_from_args(args.workdir / "shards", dict(epochs=args.epochs, patience=3, image_size=args.image_size,
                                                   crop_scale_min=0.35, backend=args.backend, device="auto",
                                                   workers=args.workers, seed=args.seed))
    from camtrap_fast.ingest.crop_plan import CropConfig
    from camtrap_fast.shards.build import ShardJob, build_shards
    from camtrap_fast.shards.encode import EncodeConfig
    from camtrap_fast.synth import synthesize
    from camtrap_fast.train import train

    from camtrap_fast.pipelines import default_workers

    started = time.perf_counter()
    work = args.workdir
    shard_workers = args.workers or default_workers()
    images, shards, runs = work / "images", work / "shards", work / "runs"
    steps = 4 if args.no_crops else 5
    print(f"[1/{steps}] synthesizing demo images (scale {args.scale}) and a simulated MegaDetector run into {images}",
          flush=True)
    synth = synthesize(synth_config)
    print(f"[2/{steps}] sharding into {shards}", flush=True)
    shard_size = round(args.image_size * 80 / 64)  # resize once to a little above the crop
    build_shards(ShardJob(source=images / "annotations.json", out=shards, encode=EncodeConfig(size=shard_size),
                          shard_size=1000, workers=shard_workers, seed=args.seed, overwrite=True, progress=False,
                          command=("camtrap-fast", "demo")))
    from camtrap_fast.shards.manifest import load_manifest

    manifest = load_manifest(shards)
    sampling, ros_ratios = scaled_sampling(manifest.splits["train"].samples)
    shutil.rmtree(runs, ignore_errors=True)
    common = dict(epochs=args.epochs, patience=3, image_size=args.image_size, crop_scale_min=0.35,
                  backend=args.backend, device="auto", workers=args.workers, seed=args.seed)
    print(f"[3/{steps}] baseline: ResNet-18 from random init, {args.epochs} epochs at most", flush=True)
    baseline = train(config_from_args(shards, common), runs / "baseline", progress=False)
    print(f"[4/{steps}] two-phase: phase 1 with --sampling {sampling} --ros-ratios {ros_ratios} "
          f"(the study's 5k/15k caps scaled to {manifest.splits['train'].samples} training images), "
          "then phase 2 on cached features", flush=True)
    two_phase = train(config_from_args(shards, {**common, "two_phase": True, "sampling": sampling,
                                                "ros_ratios": ros_ratios, "compare": runs / "baseline"}),
                      runs / "two-phase", progress=False)
    rows = [("baseline (no rebalancing)", baseline["phase1"]), ("two-phase: phase 1 (ROS&RUS)", two_phase["phase1"]),
            ("two-phase: phase 2 (head)", two_phase["phase2"])]
    if not args.no_crops:
        crop_shards = work / "shards-crops"
        print(f"[5/{steps}] the same two-phase run on MegaDetector crops ({synth.detections_path.name}: the "
              f"simulated detector's boxes at conf >= 0.2, sharded into {crop_shards})", flush=True)
        build_shards(ShardJob(source=images / "annotations.json", out=crop_shards,
                              encode=EncodeConfig(size=shard_size), crops=CropConfig("detections", synth.detections_path),
                              shard_size=1000, workers=shard_workers, seed=args.seed, overwrite=True, progress=False,
                              command=("camtrap-fast", "demo")))
        crop_sampling, crop_ratios = scaled_sampling(load_manifest(crop_shards).splits["train"].samples)
        crops = train(config_from_args(crop_shards, {**common, "two_phase": True, "sampling": crop_sampling,
                                                     "ros_ratios": crop_ratios}), runs / "two-phase-crops",
                      progress=False)
        rows += [("crops: phase 1 (ROS&RUS)", crops["phase1"]), ("crops: phase 2 (head)", crops["phase2"])]

    print(f"\n{'model':<30}{'accuracy':>10}{'macro-F1':>10}")
    for name, metrics in rows:
        print(f"{name:<30}{metrics['accuracy']:>10.3f}{metrics['macro_f1']:>10.3f}")
    if not args.no_crops:
        print("(whole-frame rows score test frames; crop rows score the test crops of those frames' detections)")
    print(f"\nreports: {runs / 'baseline' / 'phase1'}, {runs / 'two-phase' / 'phase1'}, {runs / 'two-phase' / 'phase2'}"
          + ("" if args.no_crops else f", {runs / 'two-phase-crops' / 'phase2'}"))
    print(f"per-species F1 change: {runs / 'two-phase' / 'phase2' / 'f1_change.png'}")
    from camtrap_fast.cli.report import write_run_page  # issue 14: each run's HTML page, its path printed last

    pages = [write_run_page(runs / name) for name in ("baseline", "two-phase")
             + (() if args.no_crops else ("two-phase-crops",))]
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print("\n".join(pages))
    return 0
