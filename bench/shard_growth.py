"""How `camtrap-fast shard` grows with the number of images: wall time and peak memory at 1k, 10k and 100k images.

For sizing a cluster: each row is the whole command in a fresh process (`--workers 2`), timed from start to
exit; peak memory is the largest sum of resident memory (RSS) over the command's whole process tree (the
command and its encoding workers), sampled every 0.1 s from /proc, so shared library pages count once per
process, as `ps` shows them: an upper bound.

Inputs: a pool of distinct synthetic JPEGs of real camera-trap size (default 2048x1536, quality 90, 4:2:0),
each cut from one of the real photos in ../shared/data (a random window of a photo at least that large,
else the photo resized to cover it), randomly mirrored, with a random brightness and colour cast, so every
file is different and has a real photo's detail (decode cost). A source of N images is a folder of 8 class
folders holding N hard links to the pool, round robin: N files as `shard` sees them, the disk holding only
the pool (so all runs read from the page cache, as from a fast local disk).

Sizes above --part-above run as `--part K/N` slices of that many images, one after the other on this
machine, then `--merge`: how a cluster runs them. Their row adds up the parts' seconds and gives the
largest part's peak, the merge separately.

    python bench/shard_growth.py                         # 1k, 10k, 100k (the last as 5 parts + merge), then the table
    python bench/shard_growth.py --images 10000          # one row, kept in WORK/growth.json
    python bench/shard_growth.py --images 100000 --part 2/5
    python bench/shard_growth.py --report                # the table from WORK/growth.json; writes bench/results/
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import load_average, machine_line, write_result  # noqa: E402

DATA = Path(os.environ.get("CAMTRAP_FAST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CLASSES = 8
SAMPLE_S = 0.1


def real_photos() -> list[Path]:
    folders = ["ena24-small", "lila-mixed", "serengeti-samples/sequence-d04"]
    return [p for f in folders for p in sorted((DATA / f).glob("*")) if p.suffix.lower() in (".jpg", ".jpeg")]


def make_pool(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """`count` distinct synthetic JPEGs of `size` cut from the real photos (made once, kept in `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f"done-{count}-{size[0]}x{size[1]}"
    paths = [folder / f"{i:05d}.jpg" for i in range(count)]
    if done.exists():
        return paths
    rng = random.Random(seed)
    photos = real_photos()
    for i, path in enumerate(paths):
        with Image.open(photos[i % len(photos)]) as photo:
            photo = ImageOps.exif_transpose(photo).convert("RGB")
        scale = max(size[0] / photo.width, size[1] / photo.height)
        if scale > 1 or rng.random() < 0.5:  # too small, or (half the time) a whole view rather than a window
            scale = max(scale, 1e-9)
            photo = photo.resize((math.ceil(photo.width * scale), math.ceil(photo.height * scale)),
                                 Image.Resampling.BICUBIC)
        left, top = rng.randint(0, photo.width - size[0]), rng.randint(0, photo.height - size[1])
        image = photo.crop((left, top, left + size[0], top + size[1]))
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
        image = ImageEnhance.Color(image).enhance(rng.uniform(0.8, 1.2))
        image.save(path, format="JPEG", quality=90)
    done.touch()
    return paths


def make_source(folder: Path, pool: list[Path], images: int) -> Path:
    """A folder source of `images` hard links to the pool, round robin over CLASSES class folders."""
    source = folder / f"source-{images}"
    done = source / ".done"
    if done.exists():
        return source
    for k in range(CLASSES):
        (source / f"class{k}").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        link = source / f"class{i % CLASSES}" / f"{i:07d}.jpg"
        if not link.exists():
            os.link(pool[i % len(pool)], link)
    done.touch()
    return source


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss_bytes(pid: int) -> int:
    tree, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        todo += tree.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def measure(command: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes of the process tree) of `command`."""
    start = time.perf_counter()
    process = subprocess.Popen(command)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_bytes(process.pid))
        time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"{' '.join(command)}: exit {process.returncode}")
    return seconds, peak


def shard_command(source: Path, out: Path, part: str | None, merge: bool) -> list[str]:
    base = [sys.executable, "-m", "camtrap_fast", "shard"]
    if merge:
        return base + [str(out), "--merge", "--quiet"]
    command = base + [str(source), str(out), "--workers", "2", "--quiet"]
    return command + (["--part", part] if part else [])


def run_one(work: Path, pool: list[Path], images: int, part: str | None, merge: bool) -> dict:
    source = make_source(work, pool, images)
    out = work / f"out-{images}"
    if not merge and (not part or part.startswith("0/")) and out.exists():  # a fresh run, not a resumed one
        shutil.rmtree(out)
    load = load_average()
    seconds, peak = measure(shard_command(source, out, part, merge))
    row = {"images": images, "part": part, "merge": merge, "seconds": round(seconds, 2),
           "peak_rss_bytes": peak, "load_before": load, "load_after": load_average(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    what = f"--part {part}" if part else ("--merge" if merge else "one run")
    print(f"{images:>8,} images ({what}): {seconds:8.1f} s, peak {peak / 1e9:.2f} GB, load {load}", flush=True)
    return row


def report(rows: list[dict], image_size: str) -> None:
    print(machine_line())
    print(f"inputs: synthetic {image_size} JPEGs cut from real photos (see the docstring), --workers 2")
    print(f"{'images':>9}{'how':>22}{'seconds':>10}{'images/s':>10}{'peak GB':>9}")
    figures = {}
    for images in sorted({r["images"] for r in rows}):
        mine = [r for r in rows if r["images"] == images]
        whole = [r for r in mine if not r["part"] and not r["merge"]]
        parts = [r for r in mine if r["part"]]
        merge = [r for r in mine if r["merge"]]
        if whole:
            r = whole[-1]
            print(f"{images:>9,}{'one run':>22}{r['seconds']:>10.1f}{images / r['seconds']:>10.1f}"
                  f"{r['peak_rss_bytes'] / 1e9:>9.2f}")
            figures[f"{images}_seconds"], figures[f"{images}_peak_gb"] = r["seconds"], r["peak_rss_bytes"] / 1e9
        if parts:
            n = int(parts[0]["part"].split("/")[1])
            latest = {r["part"]: r for r in parts}
            if len(latest) == n:
                total = sum(r["seconds"] for r in latest.values())
                peak = max(r["peak_rss_bytes"] for r in latest.values())
                print(f"{images:>9,}{f'{n} parts, one by one':>22}{total:>10.1f}{images / total:>10.1f}{peak / 1e9:>9.2f}")
                figures[f"{images}_parts_seconds"], figures[f"{images}_part_peak_gb"] = total, peak / 1e9
            else:
                print(f"{images:>9,}{f'{len(latest)} of {n} parts':>22}  (incomplete)")
        if merge:
            r = merge[-1]
            print(f"{images:>9,}{'--merge':>22}{r['seconds']:>10.1f}{'':>10}{r['peak_rss_bytes'] / 1e9:>9.2f}")
            figures[f"{images}_merge_seconds"], figures[f"{images}_merge_peak_gb"] = r["seconds"], r["peak_rss_bytes"] / 1e9
    write_result("shard_growth", figures, {}, {}, config={"image_size": image_size, "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="one measurement at this many images (default: all sizes)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="for the default run")
    parser.add_argument("--part", help="K/N: measure this part only (with --images)")
    parser.add_argument("--merge", action="store_true", help="measure the merge of --images' parts")
    parser.add_argument("--part-above", type=int, default=20000, help="default run: sizes above this run as parts")
    parser.add_argument("--report", action="store_true", help="print the table of the rows measured so far")
    parser.add_argument("--pool", type=int, default=500, help="distinct JPEGs")
    parser.add_argument("--image-size", default="2048x1536")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "camtrap-fast-growth")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.image_size.split("x"))
    work = args.work / args.image_size
    log = work / "growth.json"
    rows = json.loads(log.read_text()) if log.exists() else []
    if not args.report:
        pool = make_pool(work / "pool", args.pool, size)
        todo = []
        if args.images:
            todo.append((args.images, args.part, args.merge))
        else:
            for images in (int(v) for v in args.sizes.split(",")):
                n = math.ceil(images / args.part_above)
                todo += [(images, None, False)] if n == 1 else (
                    [(images, f"{k}/{n}", False) for k in range(n)] + [(images, None, True)])
        for images, part, merge in todo:
            rows.append(run_one(work, pool, images, part, merge))
            log.write_text(json.dumps(rows, indent=1))
    report(rows, args.image_size)


if __name__ == "__main__":
    main()
