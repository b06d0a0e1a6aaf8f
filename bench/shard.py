"""Shard-step throughput on real 1-5 MP camera-trap photos vs the naive PIL path, in one run.

Naive: PIL open -> full-size decode -> resize shorter side to 256 -> save JPEG q90.
Ours:  camtrap_fast.shards.encode.encode_image (DCT-scaled decode via Image.draft,
       EXIF orientation, RGB, resize, baseline JPEG q90).
Both single-process (per core), same files, warm page cache; median of repeats.
Also times the whole `shard` command end to end (tars, indexes, manifest) with --workers 2.

    python bench/shard.py [--repeats 5] [--size 256]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import PIL
from PIL import Image

from camtrap_fast.shards.encode import EncodeConfig, encode_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_result  # noqa: E402

DATA = Path(os.environ.get("CAMTRAP_FAST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TARGET_RATIO = 3.0


def real_photos() -> list[Path]:
    folders = ["ena24-small", "lila-mixed", "serengeti-samples/sequence-d04"]
    photos = [p for f in folders for p in sorted((DATA / f).glob("*")) if p.suffix.lower() in (".jpg", ".jpeg")]
    return [p for p in photos if min(Image.open(p).size) >= 1000]


def naive_encode(path: Path, size: int, quality: int) -> bytes:
    with Image.open(path) as image:
        image = image.convert("RGB")  # full-size decode
        width, height = image.size
        scale = size / min(width, height)
        image = image.resize((round(width * scale), round(height * scale)), Image.Resampling.BICUBIC)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
        return out.getvalue()


def images_per_s(fn, photos, repeats: int) -> tuple[float, float]:
    for p in photos[:3]:  # warm-up: page cache, codec tables
        fn(p)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for p in photos:
            fn(p)
        rates.append(len(photos) / (time.perf_counter() - start))
    return statistics.median(rates), (max(rates) - min(rates)) / 2


def end_to_end(photos: list[Path], size: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        for i, p in enumerate(photos * 2):
            (root / f"class{i % 4}").mkdir(parents=True, exist_ok=True)
            (root / f"class{i % 4}" / f"{i:04d}.jpg").symlink_to(p)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "camtrap_fast", "shard", str(root), str(Path(tmp) / "out"),
                        "--size", str(size), "--workers", "2", "--quiet"], check=True)
        return 2 * len(photos) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ci", action="store_true", help="the CI size: 20 photos, 2 repeats")
    args = parser.parse_args()
    photos = real_photos()
    if args.ci:
        photos, args.repeats = photos[:20], 2
    megapixels = statistics.median(Image.open(p).size[0] * Image.open(p).size[1] / 1e6 for p in photos)
    config = EncodeConfig(size=args.size, quality=90)

    naive, naive_spread = images_per_s(lambda p: naive_encode(p, args.size, 90), photos, args.repeats)
    ours, ours_spread = images_per_s(lambda p: encode_image(str(p), config), photos, args.repeats)
    e2e = end_to_end(photos, args.size)

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"PIL {PIL.__version__}")
    print(f"inputs: {len(photos)} real camera-trap JPEGs, median {megapixels:.1f} MP -> shorter side {args.size} px")
    print(f"{'path':<44}{'images/s':>10}{'±':>7}")
    print(f"{'naive PIL (full decode, resize, save), 1 core':<44}{naive:>10.1f}{naive_spread:>7.1f}")
    print(f"{'camtrap-fast encode_image, 1 core':<44}{ours:>10.1f}{ours_spread:>7.1f}")
    print(f"{'camtrap-fast shard end to end, --workers 2':<44}{e2e:>10.1f}")
    ratio = ours / naive
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"ratio per core: {ratio:.2f}x the naive path ({verdict} the {TARGET_RATIO:.0f}x target)")
    write_result("shard", {"encode_images_per_s": round(ours, 2), "encode_spread": round(ours_spread, 2),
                           "shard_end_to_end_images_per_s": round(e2e, 2), "photos": len(photos),
                           "median_megapixels": round(megapixels, 2)},
                 {"naive_images_per_s": round(naive, 2), "naive_spread": round(naive_spread, 2)},
                 {"encode_vs_naive": ratio}, config={"repeats": args.repeats, "size": args.size}, ci=args.ci)


if __name__ == "__main__":
    main()
