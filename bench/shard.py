"""Shard-step throughput on real 1-5 MP camera-trap photos vs the naive PIL path and vs decoding alone, in one run.

Naive:       PIL open -> full-size decode -> resize shorter side to 256 -> save JPEG q90.
Decode-only: PIL open -> the same Image.draft as ours -> load: the DCT-scaled decode and nothing else.
Ours:        camtrap_fast.shards.encode.encode_image (DCT-scaled decode through libjpeg-turbo 3 when simplejpeg
             is installed, EXIF orientation, RGB, resize, baseline JPEG q90).
All single-process (per core), same files, warm page cache. The paths take turns within each repeat (naive,
decode-only, ours, ...), so load from other jobs falls on all of them alike; median of repeats. Also shown,
for what each part gave: ours with PIL's decoder (no simplejpeg), libjpeg-turbo 3's decode alone, and the
whole `shard` command end to end (tars, indexes, manifest) with --workers 2.

    python bench/shard.py [--repeats 5] [--size 256] [--ci]
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
from collections.abc import Callable
from pathlib import Path

import PIL
from PIL import Image

from camtrap_fast.shards import fastjpeg
from camtrap_fast.shards.encode import EncodeConfig, encode_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import load_average, write_result  # noqa: E402
from targets import targets_for  # noqa: E402

DATA = Path(os.environ.get("CAMTRAP_FAST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


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


def decode_only(path: Path, size: int) -> None:
    """What encode_image's decode costs alone: the draft encode_image asks for, then the decode."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        image.load()


def turbo3_decode_only(path: Path, size: int) -> None:
    """libjpeg-turbo 3's decode alone (simplejpeg), at the same DCT scale: the floor of our fast path."""
    data = path.read_bytes()
    height, width = fastjpeg.simplejpeg.decode_jpeg_header(data)[:2]
    scale = fastjpeg.draft_scale((width, height), (size, size))
    fastjpeg.simplejpeg.decode_jpeg(data, "RGBX", min_height=-(-height // scale), min_width=-(-width // scale))


def encode_with_pil_decoder(path: Path, config: EncodeConfig) -> bytes:
    saved, fastjpeg.simplejpeg = fastjpeg.simplejpeg, None
    try:
        return encode_image(str(path), config)
    finally:
        fastjpeg.simplejpeg = saved


def interleaved_rates(paths: dict[str, Callable[[Path], object]], photos: list[Path],
                      repeats: int) -> dict[str, tuple[float, float]]:
    """{name: (median images/s, half the range)}; every repeat times each path once, in turn."""
    for fn in paths.values():
        for p in photos[:3]:  # warm-up: page cache, codec tables
            fn(p)
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            start = time.perf_counter()
            for p in photos:
                fn(p)
            rates[name].append(len(photos) / (time.perf_counter() - start))
    return {name: (statistics.median(r), (max(r) - min(r)) / 2) for name, r in rates.items()}


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
    load_before = load_average()

    paths: dict[str, Callable[[Path], object]] = {
        "naive": lambda p: naive_encode(p, args.size, 90),
        "decode": lambda p: decode_only(p, args.size),
        "ours": lambda p: encode_image(str(p), config),
    }
    if fastjpeg.available():
        paths["ours_pil_decoder"] = lambda p: encode_with_pil_decoder(p, config)
        paths["turbo3_decode"] = lambda p: turbo3_decode_only(p, args.size)
    rates = interleaved_rates(paths, photos, args.repeats)
    e2e = end_to_end(photos, args.size)

    rows = {
        "naive": "naive PIL (full decode, resize, save)",
        "decode": "decode only: PIL open + draft + load",
        "ours": "camtrap-fast encode_image",
        "ours_pil_decoder": "  the same with PIL's decoder (no simplejpeg)",
        "turbo3_decode": "decode only: libjpeg-turbo 3 (simplejpeg)",
    }
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"PIL {PIL.__version__}, simplejpeg {'yes' if fastjpeg.available() else 'not installed'}; "
          f"load average {load_before} before, {load_average()} after")
    print(f"inputs: {len(photos)} real camera-trap JPEGs, median {megapixels:.1f} MP -> shorter side {args.size} px; "
          f"{args.repeats} repeats, paths in turn")
    print(f"{'path, 1 core':<48}{'images/s':>10}{'±':>7}")
    for key, (rate, spread) in rates.items():
        print(f"{rows[key]:<48}{rate:>10.1f}{spread:>7.1f}")
    print(f"{'camtrap-fast shard end to end, --workers 2':<48}{e2e:>10.1f}")

    ours, naive, decode = rates["ours"][0], rates["naive"][0], rates["decode"][0]
    ratios = {"encode_vs_naive": ours / naive, "encode_vs_decode": ours / decode}
    targets = targets_for("shard")
    for key, value in ratios.items():
        verdict = "meets" if value >= targets[key].target else "MISSES"
        print(f"{key}: {value:.2f}x ({verdict} the {targets[key].target:.2f}x target)")
    figures = {"encode_images_per_s": round(ours, 2), "encode_spread": round(rates["ours"][1], 2),
               "shard_end_to_end_images_per_s": round(e2e, 2), "photos": len(photos),
               "median_megapixels": round(megapixels, 2), "simplejpeg": fastjpeg.available()}
    if fastjpeg.available():
        figures["encode_pil_decoder_images_per_s"] = round(rates["ours_pil_decoder"][0], 2)
        figures["turbo3_decode_only_images_per_s"] = round(rates["turbo3_decode"][0], 2)
    write_result("shard", figures,
                 {"naive_images_per_s": round(naive, 2), "naive_spread": round(rates["naive"][1], 2),
                  "decode_only_images_per_s": round(decode, 2), "decode_only_spread": round(rates["decode"][1], 2)},
                 ratios, config={"repeats": args.repeats, "size": args.size, "load_before": load_before}, ci=args.ci)


if __name__ == "__main__":
    main()
