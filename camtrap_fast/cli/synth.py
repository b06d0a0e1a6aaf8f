"""`camtrap-fast synth OUT_DIR`: write the built-in demo dataset (procedurally drawn camera-trap captures)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a procedurally drawn camera-trap demo dataset (JPEGs + COCO Camera Traps JSON)",
        description="Draw camera-trap-like captures of the 52 Snapshot Serengeti season-9 classes, with the "
                    "S9 train class sizes times --scale, into OUT_DIR/images/ and OUT_DIR/annotations.json "
                    "(with each animal's true box). Nothing is downloaded; the same options always give "
                    "byte-identical files.",
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="where to write images/ and annotations.json")
    # Defaults are None here and live in SynthConfig, so parsing never imports numpy or PIL.
    parser.add_argument("--scale", type=float, default=None,
                        help="fraction of the S9 train class sizes; every class keeps at least 6 images "
                             "(default 0.01: about 1,700 images)")
    parser.add_argument("--size", type=int, default=None, metavar="PX",
                        help="shorter image side in pixels; images are 4:3 landscape (default 96: 128x96)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--detections", action="store_true",
                        help="also write OUT_DIR/detections.json, a simulated MegaDetector run (true boxes with "
                             "jitter, some misses, some false boxes at low confidence) for shard --detections")
    parser.add_argument("--overwrite", action="store_true",
                        help="if OUT_DIR is not empty, delete its images/, annotations.json and detections.json first")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.synth import SynthConfig, synthesize

    given = {name: getattr(args, name) for name in ("scale", "size", "seed") if getattr(args, name) is not None}
    summary = synthesize(SynthConfig(out_dir=args.out_dir, overwrite=args.overwrite, detections=args.detections,
                                     **given))
    small_name, small_count = summary.smallest_class
    large_name, large_count = summary.largest_class
    print(f"wrote {summary.num_images:,} images ({summary.num_night_images:,} infrared night frames) in "
          f"{summary.num_sequences:,} sequences at {summary.num_locations} locations to {summary.out_dir}/images "
          f"in {summary.seconds:.1f} s ({summary.images_per_s:.0f} images/s)")
    ties = sum(count == small_count for count in summary.class_counts.values()) - 1
    smallest = f"{small_name} and {ties} more" if ties else small_name
    print(f"{len(summary.class_counts)} classes: smallest {smallest} ({small_count} images each), "
          f"largest {large_name} ({large_count:,})")
    print(f"annotations: {summary.annotations_path} ({summary.num_boxes:,} animal boxes)")
    if summary.detections_path is not None:
        print(f"detections: {summary.detections_path} ({summary.num_detections:,} simulated MegaDetector boxes)")
    return 0
