"""`camtrap-fast shard SOURCE OUT`: pack images into WebDataset shards, resized once."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "shard",
        help="pack images (folder, COCO Camera Traps JSON, CSV, Camtrap DP) into WebDataset shards",
        description="Pack images into WebDataset tar shards, resized once, with DALI indexes, a manifest, "
        "a per-sample index and a report of every rejected image. With --detections (MegaDetector output) "
        "or --crops annotations, each animal's box is a sample instead of the whole frame.",
    )
    parser.add_argument("source", type=Path, help="folder of class sub-folders, COCO Camera Traps .json, .csv, or "
                        "a Camtrap DP package (its datapackage.json or folder)")
    parser.add_argument("out", type=Path, nargs="?",
                        help="output folder (created; resumed when rerun with the same input); with --merge, the "
                             "only argument; not needed with --dry-run")
    parser.add_argument("--format", default="auto", help="auto (default), folder, coco, csv or camtrap-dp")
    parser.add_argument("--image-root", help="resolve relative image paths against this folder, or this http(s):// "
                        "URL prefix (images are then fetched; see --fetch-*)")
    parser.add_argument("--drop-classes", default="", help="comma-separated class names to drop, e.g. blank,empty,human")
    parser.add_argument("--drop-multi-species", action="store_true", help="drop images annotated with several classes")
    parser.add_argument("--keep-fraction", default="", help="keep a seeded random fraction of a class, e.g. empty=0.1")
    crops = parser.add_argument_group("crops (one sample per animal box instead of the whole frame)")
    crops.add_argument("--detections", type=Path, metavar="MD.json",
                       help="MegaDetector batch output for the SOURCE images (its file paths relative to the "
                            "SOURCE root): one sample per detection")
    crops.add_argument("--crops", default="auto", choices=("auto", "none", "detections", "annotations"),
                       help="auto (default): detections with --detections, else none (whole frames); "
                            "annotations: the label source's own boxes (COCO Camera Traps bbox, Camtrap DP bboxX...)")
    crops.add_argument("--min-detection-conf", type=float, default=None, metavar="CONF",
                       help="keep detections with conf >= CONF (default 0.2, MegaDetector v5's usual threshold)")
    crops.add_argument("--detection-categories", default="animal", metavar="NAMES",
                       help="detection categories to crop, names or ids, comma-separated (default animal)")
    crops.add_argument("--crop-padding", type=float, default=None, metavar="FRACTION",
                       help="grow each box by this fraction of its width and height on every side before making "
                            "it square (default 0.1)")
    crops.add_argument("--empty-class", default=None, metavar="NAME",
                       help="images with no detection at all (or, with --crops annotations, labelled NAME and "
                            "without a box) become one whole-frame sample of class NAME instead of rejections")
    parser.add_argument("--split", default="0.8,0.1,0.1", help="train,val,test fractions (default 0.8,0.1,0.1)")
    parser.add_argument("--group-by", default="auto", help="auto (sequence when known), sequence, location or none")
    parser.add_argument("--size", type=int, default=256, help="shorter side in pixels, never upscaled (default 256)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    parser.add_argument("--shard-size", type=int, default=None, help="samples per shard (default 10000, ~250 MB)")
    parser.add_argument("--workers", type=int, default=1, help="encoding processes (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace a previous shard output in OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    scale = parser.add_argument_group("at scale: parts on many machines, a plan without decoding, remote images")
    scale.add_argument("--part", metavar="K/N", help="write only the K-th of N equal slices of the shards (K from 0, "
                       "e.g. --part $SLURM_ARRAY_TASK_ID/N); then `shard OUT --merge`")
    scale.add_argument("--merge", action="store_true", help="`shard OUT --merge`: check that all N parts in OUT "
                       "finished from the same input and options, and write the manifest, indexes and rejected.csv")
    scale.add_argument("--dry-run", action="store_true", help="ingest, filter and split, and print what the shards "
                       "would hold per split and class, and what would be rejected; opens no image, writes nothing")
    scale.add_argument("--remote-media", choices=("fetch", "skip"), default="fetch",
                       help="http(s) image URLs: fetch them (default) or reject them as not downloaded")
    scale.add_argument("--fetch-concurrency", type=int, default=16, metavar="N", help="remote requests in flight "
                       "(default 16)")
    scale.add_argument("--fetch-tries", type=int, default=4, metavar="N",
                       help="attempts per remote image on transient failures (5xx, 429, timeouts; default 4)")
    scale.add_argument("--fetch-timeout", type=float, default=30.0, metavar="S",
                       help="seconds per connect and per read of a remote image (default 30)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from camtrap_fast.errors import UserError

    if args.merge:
        return _merge(args)
    if args.out is None and not args.dry_run:
        raise UserError("shard: give SOURCE and OUT (or `shard OUT --merge`, or `shard SOURCE --dry-run`)")
    job = _job(args)
    if args.dry_run:
        from camtrap_fast.shards.build import plan_job
        from camtrap_fast.shards.dry_run import dry_run_report

        print("\n".join(dry_run_report(plan_job(job, decode=False))))
        return 0
    from camtrap_fast.shards.build import build_shards

    summary = build_shards(job)
    if summary.manifest is None:  # a part: the merge writes the manifest and says the rest
        if not args.quiet:
            print(format_part(summary, job.out))
        return 0
    if not args.quiet:
        print(format_summary(summary))
    for line in format_warnings(summary):  # said even with --quiet: each is something the user should know
        print(line, file=sys.stderr)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from camtrap_fast.errors import UserError
    from camtrap_fast.shards.build import ShardSummary
    from camtrap_fast.shards.merge import merge_parts

    out = args.out if args.out is not None else args.source
    if args.part or args.dry_run:
        raise UserError("--merge takes only OUT (the folder the parts wrote into), not --part or --dry-run")
    if not out.is_dir():
        raise UserError(f"{out}: no such folder to merge (`shard OUT --merge` after every `--part K/N` finished)")
    merged = merge_parts(out)
    summary = ShardSummary(merged.manifest, merged.listed, merged.rejected, 0.0, 0, 0)
    if not args.quiet:
        print(format_summary(summary))
    for line in format_warnings(summary):
        print(line, file=sys.stderr)
    return 0


def _job(args: argparse.Namespace):
    from camtrap_fast.errors import UserError
    from camtrap_fast.ingest.crop_plan import DEFAULT_MIN_CONF, CropConfig
    from camtrap_fast.ingest.filters import FilterConfig, parse_keep_fraction
    from camtrap_fast.ingest.splits import SplitConfig, parse_fractions
    from camtrap_fast.ingest.remote import is_url
    from camtrap_fast.shards.build import DEFAULT_SHARD_SIZE, ShardJob
    from camtrap_fast.shards.encode import CROP_PADDING, EncodeConfig
    from camtrap_fast.shards.fetch import FetchConfig
    from camtrap_fast.shards.parts import parse_part

    mode = args.crops if args.crops != "auto" else ("detections" if args.detections else "none")
    crops = CropConfig(
        mode=mode,
        detections=args.detections,
        min_conf=DEFAULT_MIN_CONF if args.min_detection_conf is None else args.min_detection_conf,
        categories=tuple(c.strip() for c in args.detection_categories.split(",") if c.strip()),
        empty_class=args.empty_class.strip() if args.empty_class is not None else None,
    )
    if mode != "detections" and args.min_detection_conf is not None:
        raise UserError("--min-detection-conf applies to --detections MD.json")
    if mode == "none" and args.crop_padding is not None:
        raise UserError("--crop-padding applies to crops; add --detections MD.json or --crops annotations")
    try:
        encode = EncodeConfig(size=args.size, quality=args.quality,
                              crop_padding=CROP_PADDING if args.crop_padding is None else args.crop_padding)
    except ValueError as error:
        raise UserError(str(error)) from None
    try:
        fetch = FetchConfig(concurrency=args.fetch_concurrency, tries=args.fetch_tries, timeout_s=args.fetch_timeout)
    except ValueError:
        raise UserError("--fetch-concurrency and --fetch-tries must be at least 1, --fetch-timeout above 0") from None
    root = args.image_root
    return ShardJob(
        source=args.source,
        out=args.out if args.out is not None else Path(os.devnull),
        format=args.format,
        image_root=None if root is None else root if is_url(root) else Path(root),
        encode=encode,
        filters=FilterConfig(
            drop_classes=tuple(c.strip() for c in args.drop_classes.split(",") if c.strip()),
            drop_multi_species=args.drop_multi_species,
            keep_fraction=parse_keep_fraction(args.keep_fraction),
            seed=args.seed,
        ),
        split=SplitConfig(fractions=parse_fractions(args.split), group_by=args.group_by, seed=args.seed),
        shard_size=DEFAULT_SHARD_SIZE if args.shard_size is None else args.shard_size,
        workers=args.workers,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=not args.quiet,
        command=tuple(["camtrap-fast", *sys.argv[2:]]) if sys.argv[1:2] == ["shard"] else ("camtrap-fast", "shard"),
        crops=crops,
        part=parse_part(args.part) if args.part else None,
        fetch=fetch,
        remote_media=args.remote_media,
    )


def format_part(summary, out: Path) -> str:
    part = summary.part
    rejected = sum(summary.rejected.values())
    rate = summary.encoded / summary.seconds if summary.seconds else 0.0
    resumed = f", resumed after {summary.resumed_shards} finished shard(s)" if summary.resumed_shards else ""
    return (f"part {part.label}: {summary.shards_written} shard(s) written, {summary.encoded} images encoded "
            f"({rate:.0f} images/s{resumed}), {rejected} rejected while encoding; when all {part.count} parts are "
            f"done: camtrap-fast shard {out} --merge")


def format_summary(summary) -> str:
    manifest = summary.manifest
    lines = []
    if summary.up_to_date:
        lines.append(f"{manifest.root}: already complete for this input and options; nothing to do")
    lines.append(f"{'split':<8}{'samples':>10}{'shards':>8}{'classes':>9}")
    for split, info in manifest.splits.items():
        present = sum(1 for n in info.class_counts.values() if n)
        lines.append(f"{split:<8}{info.samples:>10}{len(info.shards):>8}{present:>9}")
    lines.append(f"{'rejected':<8}{sum(summary.rejected.values()):>10}")
    width = max([20, *map(len, summary.rejected)])  # "remote media (not downloaded)" is 29
    for reason, n in sorted(summary.rejected.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {reason:<{width}}{n:>6}")
    lines.append(f"{'listed':<8}{summary.listed:>10}")
    if manifest.crops:
        samples = sum(info.samples for info in manifest.splits.values())
        images = summary.listed - sum(summary.rejected.values())
        empty = manifest.crops.get("empty_class")
        what = {"detections": "detector crops", "annotations": "annotation-box crops"}[manifest.crops["mode"]]
        what += f", and whole frames of {empty}" if empty else ""
        lines.append(f"crops: {samples} samples from {images} images ({what})")
    if summary.encoded:
        rate = summary.encoded / summary.seconds if summary.seconds else 0.0
        resumed = f", resumed after {summary.resumed_shards} finished shard(s)" if summary.resumed_shards else ""
        lines.append(f"encoded {summary.encoded} images in {summary.seconds:.1f} s ({rate:.0f} images/s){resumed}")
    lines.append(f"manifest: {manifest.root / 'manifest.json'}  rejected: {manifest.root / 'rejected.csv'}")
    return "\n".join(lines)


def format_warnings(summary) -> list[str]:
    """What the user should know about the output: classes without an output, classes missing from a split,
    annotations that name no listed image. Counted after decoding, from what reached the shards."""
    from camtrap_fast.ingest.records import UNKNOWN_IMAGE_ID

    manifest = summary.manifest
    rejected = manifest.root / "rejected.csv"
    lines = [f"warning: class '{name}' has no output: {why}; see {rejected}"
             for name, why in manifest.dropped_classes.items()]
    lines += [f"warning: class '{name}' is too small to appear in {', '.join(missing)}"
              for name, missing in manifest.small_classes.items()]
    unknown = summary.rejected.get(UNKNOWN_IMAGE_ID, 0)
    if unknown:
        lines.append(f"warning: {unknown} annotation{'s' if unknown > 1 else ''} name an image id the source's "
                     f"'images' list lacks; their labels are not used (listed in {rejected})")
    return lines
