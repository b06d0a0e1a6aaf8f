"""`shard --dry-run` at LILA scale: a synthetic COCO Camera Traps file of 2,000,000 images, planned without decoding.

The file is generated here (Snapshot Serengeti's shape: sequences of 1-3 frames, 200 locations, 52 classes with
season 9's imbalance, a quarter of the images `empty` and dropped), its images on an https:// image root, so the
plan opens nothing and stats nothing. Measured: wall time and peak memory (max RSS) of the whole command, in a
fresh process, against the baseline of just `json.load` of the same file in another fresh process.
Targets: <= 60 s and <= 4 GB.

    python bench/shard_plan.py [--images 2000000] [--keep] [--ci]

--ci (make bench-ci): 200,000 images, and bench/results/shard_plan.json with the ratio of the time budget scaled
to that size (60 s x images / 2,000,000) to the measured seconds; the memory is recorded as a figure (at a tenth
of the size, the interpreter's fixed cost dominates it, so a scaled memory budget would be no fair floor).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import write_result  # noqa: E402

DATA = Path(os.environ.get("CAMTRAP_FAST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TARGET_S, TARGET_GB = 60.0, 4.0


def write_coco(path: Path, images: int, seed: int = 0) -> None:
    """A COCO Camera Traps file of `images` images, streamed to disk (never held whole)."""
    import numpy as np

    counts = json.loads((DATA / "serengeti-s9-class-counts.json").read_text())["train"]
    names = ["empty", *sorted(counts)]
    weights = np.array([sum(counts.values()) / 3, *[counts[n] for n in sorted(counts)]], dtype=np.float64)
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(names), size=images, p=weights / weights.sum())
    frames = rng.integers(1, 4, size=images)
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"info": {"version": "synthetic"}, "categories": [')
        f.write(", ".join(json.dumps({"id": i, "name": n}) for i, n in enumerate(names)))
        f.write('], "images": [')
        seq, frame = 0, 0
        for i in range(images):
            if frame >= frames[seq % images]:
                seq, frame = seq + 1, 0
            f.write(("" if i == 0 else ", ") + f'{{"id": "i{i}", "file_name": "S{seq % 11 + 1}/L{seq % 200:03d}/'
                    f'R{seq // 200 % 9 + 1}/IMG_{i:07d}.JPG", "seq_id": "s{seq}", "location": "L{seq % 200:03d}", '
                    f'"frame_num": {frame}, "datetime": "2012-01-01 00:00:00"}}')
            frame += 1
        f.write('], "annotations": [')
        for i in range(images):
            f.write(("" if i == 0 else ", ") + f'{{"id": "a{i}", "image_id": "i{i}", "category_id": {labels[i]}}}')
        f.write("]}")


def timed(command: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in GB, stdout) of a command in a fresh process (its own max RSS, via wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # max over children so far: run the smaller one first
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {err}")
    return seconds, usage.ru_maxrss / 1e6, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated file (printed)")
    parser.add_argument("--ci", action="store_true", help="the CI size (200,000 images) and a results file")
    args = parser.parse_args()
    if args.ci:
        args.images = 200_000
    tmp = Path(tempfile.mkdtemp(prefix="plan-bench-"))
    source = tmp / "annotations.json"
    start = time.perf_counter()
    write_coco(source, args.images)
    made = time.perf_counter() - start
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"source: {args.images} images, {source.stat().st_size / 1e6:.0f} MB COCO Camera Traps JSON "
          f"(written in {made:.0f} s)")
    base_s, base_gb, _ = timed([sys.executable, "-c", f"import json; json.load(open({str(source)!r}))"])
    ours_s, ours_gb, report = timed([sys.executable, "-m", "camtrap_fast", "shard", str(source), "--dry-run",
                                     "--image-root", "https://example.invalid/serengeti/", "--drop-classes", "empty"])
    print("\n".join(report.splitlines()[:5]) + "\n...")
    print(f"{'':<34}{'seconds':>9}{'peak GB':>9}")
    print(f"{'baseline: json.load alone':<34}{base_s:>9.1f}{base_gb:>9.2f}")
    print(f"{'shard --dry-run (whole command)':<34}{ours_s:>9.1f}{ours_gb:>9.2f}")
    print(f"ratio: {ours_s / base_s:.2f}x the time of json.load, {ours_gb / base_gb:.2f}x its memory; "
          f"{ours_s * 1e6 / args.images:.1f} us per image")
    met = ours_s <= TARGET_S and ours_gb <= TARGET_GB
    print(f"targets <= {TARGET_S:.0f} s and <= {TARGET_GB:.0f} GB: {'met' if met else 'MISSED'}"
          + ("" if args.images == 2_000_000 else f" (at {args.images} images, not 2,000,000)"))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    budget_s = TARGET_S * args.images / 2_000_000
    write_result("shard_plan", {"dry_run_seconds": round(ours_s, 3), "dry_run_peak_gb": round(ours_gb, 3),
                                "us_per_image": round(ours_s * 1e6 / args.images, 2)},
                 {"json_load_seconds": round(base_s, 3), "json_load_peak_gb": round(base_gb, 3)},
                 {"budget_vs_seconds": budget_s / ours_s}, config={"images": args.images}, ci=args.ci)
    if args.keep:
        print(f"kept {source}")
    else:
        source.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
