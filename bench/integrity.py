"""What integrity costs: the per-read CRC-32 check against a JPEG decode, and `camtrap-fast verify` throughput.

Shards real Serengeti photos (512x384, repeated under new names to `--images` samples) at a 256-px shorter
side, then, single process, warm page cache, median of repeats:
  * ShardReader.read per sample with the CRC-32 check and without it (the same index, crc32 dropped);
  * zlib.crc32 alone on the same payloads;
  * the eval decode of one sample (pipelines.pil_backend.eval_image, 224 px), the work a read feeds;
  * `verify_shards` over the whole directory, in MB/s and samples/s.

    python bench/integrity.py [--images 2880] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from camtrap_fast.pipelines.config import LoaderConfig
from camtrap_fast.pipelines.pil_backend import eval_image
from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.shards.reader import ShardReader
from camtrap_fast.shards.verify import verify_shards

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_result  # noqa: E402

DATA = Path(os.environ.get("CAMTRAP_FAST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def median_us(fn, items, repeats: int) -> float:
    fn(items[0])
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        runs.append((time.perf_counter() - start) / len(items) * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2880)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ci", action="store_true", help="the CI size: 720 images, 2 repeats")
    args = parser.parse_args()
    if args.ci:
        args.images, args.repeats = 720, 2
    gallery = sorted((DATA / "serengeti-samples" / "gallery").glob("*.JPG"))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "photos"
        for i in range(args.images):
            folder = source / f"class{i % 8}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.jpg").symlink_to(gallery[i % len(gallery)])
        out = Path(tmp) / "shards"
        subprocess.run([sys.executable, "-m", "camtrap_fast", "shard", str(source), str(out), "--workers", "2",
                        "--shard-size", "1000", "--quiet"], check=True)
        manifest = load_manifest(out)
        index = manifest.load_index("train")
        samples = list(range(len(index)))
        checked, unchecked = ShardReader(index, out), ShardReader(dataclasses.replace(index, crc32=None), out)
        payloads = [unchecked.read(i) for i in samples]
        config = LoaderConfig(mode="eval", backend="pil", device="cpu", image_size=224)
        read_crc = median_us(checked.read, samples, args.repeats)
        read_plain = median_us(unchecked.read, samples, args.repeats)
        crc = median_us(zlib.crc32, payloads, args.repeats)
        decode = median_us(lambda data: eval_image(data, config), payloads[:300], max(1, args.repeats // 2))
        verify_shards(out)  # warm
        runs = []
        for _ in range(args.repeats):
            report = verify_shards(out)
            runs.append(report.seconds)
        seconds = statistics.median(runs)
    mean_kb = sum(map(len, payloads)) / len(payloads) / 1e3
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{len(payloads)} train samples, mean JPEG {mean_kb:.1f} KB; {report.samples} samples, "
          f"{report.bytes / 1e6:.1f} MB in all splits")
    print(f"read, CRC-32 checked     {read_crc:7.1f} us/sample")
    print(f"read, unchecked          {read_plain:7.1f} us/sample")
    print(f"zlib.crc32 alone         {crc:7.1f} us/sample ({mean_kb / crc:.2f} GB/s)")
    print(f"eval decode (224 px)     {decode:7.1f} us/sample; the check adds {(read_crc - read_plain) / decode:.1%}")
    print(f"verify                   {report.bytes / seconds / 1e6:7.0f} MB/s, {report.samples / seconds:.0f} samples/s "
          f"({seconds:.2f} s, median of {args.repeats})")
    # The check's cost is zlib.crc32 over the payload (timed alone: the difference of two reads is mostly noise).
    write_result("integrity", {"read_checked_us": round(read_crc, 2), "read_unchecked_us": round(read_plain, 2),
                               "crc32_us": round(crc, 2), "verify_mb_per_s": round(report.bytes / seconds / 1e6, 1),
                               "verify_samples_per_s": round(report.samples / seconds), "samples": len(payloads)},
                 {"eval_decode_us": round(decode, 2)}, {"decode_vs_crc": decode / crc},
                 config={"images": args.images, "repeats": args.repeats}, ci=args.ci)


if __name__ == "__main__":
    main()
