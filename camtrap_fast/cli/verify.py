"""`camtrap-fast verify SHARDS...`: read every shard once and check it against its index, `.idx` and manifest."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check shard directories: every tar against its index (CRC-32 per sample), .idx and manifest",
        description="Read every tar of each shard directory front to back and check each sample against the "
        "index (offsets, sizes, CRC-32 of the JPEG, label), each DALI .idx file and the manifest (checksums, "
        "counts, shard list). Prints each damaged shard and sample; exit 1 when anything is damaged.",
    )
    parser.add_argument("shards", nargs="+", type=Path, metavar="SHARDS",
                        help="shard directories (OUT folders of `camtrap-fast shard`)")
    parser.add_argument("--quiet", action="store_true", help="print only problems (and the final error line)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from camtrap_fast.errors import Fault, UserError
    from camtrap_fast.shards.verify import verify_shards

    for path in args.shards:  # every argument checked before any shard is read
        if not path.is_dir() and not (path.name == "manifest.json" and path.is_file()):
            raise UserError(f"{path}: not a shard directory (give the OUT folder of `camtrap-fast shard`)")
    damaged = []
    for path in args.shards:
        with tqdm(unit="B", unit_scale=True, desc=f"verify {path}", disable=True if args.quiet else None) as bar:
            report = verify_shards(path, on_bytes=bar.update)
        for problem in report.problems:
            print(problem.line(), flush=True)
        if report.problems:
            damaged.append(report)
        elif not args.quiet:
            rate = report.bytes / report.seconds / 1e6 if report.seconds else 0.0
            crc = (f"; CRC-32 not checked in {', '.join(report.unchecked_crc)} (index from an older camtrap-fast: "
                   "shard into a new folder to add it)") if report.unchecked_crc else ""
            print(f"{report.root}: OK, {report.samples} samples in {report.shards} shards "
                  f"({report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s, {rate:.0f} MB/s){crc}")
    if damaged:
        problems = sum(len(r.problems) for r in damaged)
        files = sum(len(r.damaged_shards) for r in damaged)
        first = damaged[0]
        raise Fault(f"{first.root}: {problems} problem{'s' if problems > 1 else ''} in {files} file"
                    f"{'s' if files > 1 else ''} (listed above); shard the source again into a new folder, "
                    "or restore the damaged files from a copy"
                    + (f"; {len(damaged) - 1} more shard directories are damaged" if len(damaged) > 1 else ""))
    return 0
