"""The prepared GPU benchmark (run it through bench/gpu.sh): one JSON with every GPU figure the project targets.

    bash bench/gpu.sh [--out FILE] [--scale 0.01] [--batch-size 256] [--passes 3] [--head-rows 1.0] [--small]

On the machine itself, from nothing: `camtrap-fast synth` makes the procedural camera-trap set (no
downloads), `camtrap-fast shard --size 256` packs it, and then, each in its own section of the JSON:

  dali_mixed          DALI `mixed` decode + random resized crop + flip at 224 px from the 256-px shards, the
                      train loader's uint8 batches on the GPU (target >= 15,000 images/s on an H100/H200 with 16
                      CPU cores), and its normalized float inputs;
  torchvision_nvjpeg  the same JPEGs through `torchvision.io.decode_jpeg(device="cuda")` (nvJPEG, batched) and
                      torchvision's resized_crop + flip on the GPU: decode only, and decode + augment;
  train               ResNet-18, bf16 autocast + channels_last, the product's phase-1 loop
                      (`train.loops.train_one_epoch`): images/s with the real loader (DALI mixed when installed,
                      else the PIL backend) against in-memory tensors of the same shape (target >= 0.9);
  phase2              feature extraction images/s (frozen backbone, eval loader) and the phase-2 head's seconds
                      for 30 epochs over season-9-sized features (155,254 x 512 fp16, batch 64).

Without a GPU every CUDA part is skipped and says so ("skipped": reason); the CPU parts (data, PIL loader,
extraction, head) still run, at `--small` sizes in the test (tests/test_gpu_bench.py). A section that fails
records its error and the others still run. DEVELOPERS.md says how to reach the GPU machine and bring DALI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from results import load_average, machine_info  # noqa: E402

from camtrap_fast.atomic import write_text  # noqa: E402
from camtrap_fast.environment import git_sha, package_versions  # noqa: E402

SIZE = 224
TARGET_DALI_IMAGES_PER_S = 15_000
TARGET_TRAIN_RATIO = 0.9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "gpu.json")
    parser.add_argument("--scale", type=float, default=0.01, help="synth scale (0.01: 1,700 images)")
    parser.add_argument("--batch-size", type=int, default=256, help="loader and training batch")
    parser.add_argument("--passes", type=int, default=3, help="timed passes per figure (median)")
    parser.add_argument("--pass-images", type=int, default=32_768, help="images per loader pass")
    parser.add_argument("--train-batches", type=int, default=40, help="batches per timed training pass")
    parser.add_argument("--head-rows", type=float, default=1.0, help="fraction of season 9's 155,254 feature rows")
    parser.add_argument("--small", action="store_true", help="tiny sizes everywhere (the CPU test)")
    args = parser.parse_args()
    if args.small:
        args.scale, args.batch_size, args.passes, args.pass_images = 0.0005, 16, 1, 64
        args.train_batches, args.head_rows = 2, 0.005
    cuda = torch.cuda.is_available()
    started = time.perf_counter()
    result = {"benchmark": "gpu", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "cuda": cuda, "gpu": torch.cuda.get_device_name() if cuda else None,
              "note": None if cuda else "no CUDA GPU here: the GPU parts are skipped (each says so); CPU parts ran",
              "dali": dali_version(), "machine": machine_info(), "load_average_start": load_average(),
              "versions": package_versions(), "git_sha": git_sha(), "config": vars(args) | {"out": str(args.out)},
              "targets": {"dali_mixed_images_per_s": TARGET_DALI_IMAGES_PER_S,
                          "train_real_vs_synthetic": TARGET_TRAIN_RATIO, "head_seconds_30_epochs": 5.0}}
    with tempfile.TemporaryDirectory(prefix="camtrap-gpu-bench-") as tmp:
        shards = section(result, "data", lambda: make_data(Path(tmp), args))
        if "error" not in result["data"]:
            section(result, "dali_mixed", lambda: dali_mixed(shards, args, cuda))
            section(result, "torchvision_nvjpeg", lambda: torchvision_nvjpeg(shards, args, cuda))
            section(result, "train", lambda: train(shards, args, cuda))
            section(result, "phase2", lambda: phase2(shards, args, cuda))
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_end"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("machine", "versions", "config")}, indent=1,
                     default=str))
    print(f"wrote {args.out} in {result['seconds']} s")
    return 0


def section(result: dict, name: str, run):
    """Run one part; its figures (or {"skipped": why} / {"error": ...}) go under result[name]."""
    start = time.perf_counter()
    print(f"[{name}] ...", flush=True)
    try:
        value = run()
    except Exception as error:  # a failed part is recorded; the others still run
        traceback.print_exc()
        result[name] = {"error": f"{type(error).__name__}: {error}"}
        return None
    figures, returned = (value if isinstance(value, tuple) else (value, None))
    result[name] = {**figures, "section_seconds": round(time.perf_counter() - start, 1)}
    print(f"[{name}] {json.dumps(result[name], default=str)}", flush=True)
    return returned


def skipped(why: str) -> dict:
    return {"skipped": why}


def dali_version() -> str | None:
    from camtrap_fast.pipelines import dali_available

    if not dali_available():
        return None
    from importlib import metadata

    for name in ("nvidia-dali-cuda130", "nvidia-dali-cuda120", "nvidia-dali-cuda110"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "installed (version unknown)"


def make_data(root: Path, args) -> tuple[dict, Path]:
    """Synthesize and shard on this machine (nothing is downloaded): 256-px shards, as bench/loader.py's."""
    cpus = len(os.sched_getaffinity(0))
    images, shards = root / "images", root / "shards"
    start = time.perf_counter()
    camtrap("synth", str(images), "--scale", str(args.scale), "--size", "288", "--seed", "0")
    synth_seconds = time.perf_counter() - start
    camtrap("shard", str(images / "annotations.json"), str(shards), "--size", "256", "--workers", str(cpus),
            "--shard-size", "1000", "--quiet")
    from camtrap_fast.shards.manifest import load_manifest

    manifest = load_manifest(shards)
    figures = {"samples": {split: info.samples for split, info in manifest.splits.items()},
               "classes": len(manifest.classes), "shard_size_px": manifest.image_size,
               "synth_seconds": round(synth_seconds, 1), "shard_seconds": round(time.perf_counter() - start
                                                                                - synth_seconds, 1)}
    return figures, shards


def camtrap(*argv: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-m", "camtrap_fast", *argv], check=True, cwd=REPO, env=env,
                   stdout=subprocess.DEVNULL)


def timed_passes(one_pass, passes: int, cuda: bool) -> list[float]:
    """images/s of each pass after one untimed warm-up pass."""
    one_pass()
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        images = one_pass()
        if cuda:
            torch.cuda.synchronize()
        rates.append(images / (time.perf_counter() - start))
    return rates


def summary(rates: list[float]) -> dict:
    return {"images_per_s": round(statistics.median(rates), 1), "range": [round(min(rates), 1), round(max(rates), 1)]}


def dali_mixed(shards: Path, args, cuda: bool) -> dict:
    from camtrap_fast.pipelines import LoaderConfig, dali_available, make_loader
    from camtrap_fast.shards.manifest import load_manifest

    if not cuda:
        return skipped("no CUDA GPU: DALI's mixed backend decodes on the GPU")
    if not dali_available():
        return skipped("NVIDIA DALI is not installed here: bring it as wheels (DEVELOPERS.md, GPU machine)")
    manifest = load_manifest(shards)
    workers = len(os.sched_getaffinity(0))
    config = LoaderConfig(mode="train", backend="dali", device="cuda", batch_size=args.batch_size, image_size=SIZE,
                          workers=workers)
    rng = np.random.default_rng(0)
    figures = {"batch_size": args.batch_size, "threads": workers, "pass_images": args.pass_images}
    with make_loader(manifest, "train", config) as loader:
        epochs = iter(range(1 << 30))

        def one_pass(uint8: bool):
            def run() -> int:
                order = rng.integers(0, len(loader.index), args.pass_images)
                batches = loader.epoch_images(order, next(epochs)) if uint8 else loader.epoch(order, next(epochs))
                return sum(len(labels) for _, labels in batches)

            return run

        figures["uint8_images"] = summary(timed_passes(one_pass(True), args.passes, cuda))
        figures["float_inputs"] = summary(timed_passes(one_pass(False), args.passes, cuda))
    figures["target_images_per_s"] = TARGET_DALI_IMAGES_PER_S
    figures["met"] = figures["uint8_images"]["images_per_s"] >= TARGET_DALI_IMAGES_PER_S
    return figures


def torchvision_nvjpeg(shards: Path, args, cuda: bool) -> dict:
    """torchvision's nvJPEG decode (batched lists) and its GPU resized_crop + flip: the path without DALI."""
    if not cuda:
        return skipped("no CUDA GPU: torchvision.io.decode_jpeg(device='cuda') is nvJPEG on the GPU")
    from torchvision.io import decode_jpeg
    from torchvision.transforms.v2 import functional as F

    from camtrap_fast.pipelines.crop_geometry import crop_windows, draw_crops
    from camtrap_fast.pipelines.jpeg_header import jpeg_size
    from camtrap_fast.shards.manifest import load_manifest
    from camtrap_fast.shards.reader import ShardReader

    manifest = load_manifest(shards)
    index = manifest.load_index("train")
    with ShardReader(index, manifest.root) as reader:
        jpegs = [reader.read(i) for i in range(len(index))]
    tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in jpegs]
    sizes = np.array([jpeg_size(data) for data in jpegs])
    rng = np.random.default_rng(0)
    batch = args.batch_size

    def one_pass(augment: bool):
        def run() -> int:
            order = rng.integers(0, len(tensors), args.pass_images)
            done = 0
            for b, start in enumerate(range(0, len(order), batch)):
                chosen = order[start:start + batch]
                decoded = decode_jpeg([tensors[i] for i in chosen], device="cuda")
                if augment:
                    windows = crop_windows(draw_crops(0, 0, b, len(chosen)), sizes[chosen, 0], sizes[chosen, 1],
                                           (0.08, 1.0), (3 / 4, 4 / 3))
                    crops = [F.resized_crop(image, top, left, h, w, [SIZE, SIZE], antialias=True)
                             for image, (left, top, w, h) in zip(decoded, windows.tolist())]
                    torch.stack(crops)
                done += len(chosen)
            return done

        return run

    return {"batch_size": batch, "decode_only": summary(timed_passes(one_pass(False), args.passes, cuda)),
            "decode_augment": summary(timed_passes(one_pass(True), args.passes, cuda))}


def train(shards: Path, args, cuda: bool) -> dict:
    """Phase-1 training images/s on the GPU: the real loader against in-memory tensors, same loop and model."""
    if not cuda:
        return skipped("no CUDA GPU: the bf16 + channels_last training figure is a GPU figure (CPU training: "
                       "bench/train_throughput.py)")
    import itertools

    from camtrap_fast.model import build_model
    from camtrap_fast.pipelines import LoaderConfig, dali_available, make_loader
    from camtrap_fast.shards.manifest import load_manifest
    from camtrap_fast.train.loops import train_one_epoch
    from camtrap_fast.train.parallelism import choose_parallelism

    manifest = load_manifest(shards)
    device = torch.device("cuda")
    split = choose_parallelism(device)
    backend = "dali" if dali_available() else "pil"
    config = LoaderConfig(mode="train", backend=backend, device="cuda", batch_size=args.batch_size, image_size=SIZE,
                          workers=split.workers)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    model = build_model("resnet18", len(manifest.classes)).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    epochs = itertools.count()
    n = args.train_batches * args.batch_size
    with make_loader(manifest, "train", config) as loader:
        kept = list(itertools.islice(loader.epoch(rng.integers(0, len(loader.index), 4 * args.batch_size),
                                                  next(epochs)), 4))

        def real() -> float:
            order = rng.integers(0, len(loader.index), n)
            return train_one_epoch(model, loader.epoch(order, next(epochs)), n, 0, optimizer, loss_fn, device,
                                   progress=False).images_per_s

        def synthetic() -> float:
            stream = (kept[k % len(kept)] for k in range(args.train_batches))
            return train_one_epoch(model, stream, n, 0, optimizer, loss_fn, device, progress=False).images_per_s

        real(), synthetic()  # warm-up: cuDNN autotuning, the loader's first epoch
        pairs = []
        for r in range(args.passes):
            if r % 2:
                s = synthetic()
                pairs.append((real(), s))
            else:
                pairs.append((real(), synthetic()))
    ratio = statistics.median(a / b for a, b in pairs)
    return {"backend": backend, "workers": split.workers, "batch_size": args.batch_size,
            "batches_per_pass": args.train_batches, "precision": "bf16 autocast, channels_last",
            "real_images_per_s": round(statistics.median(a for a, _ in pairs), 1),
            "synthetic_images_per_s": round(statistics.median(b for _, b in pairs), 1),
            "real_vs_synthetic": round(ratio, 3), "target": TARGET_TRAIN_RATIO, "met": ratio >= TARGET_TRAIN_RATIO}


def phase2(shards: Path, args, cuda: bool) -> dict:
    """Feature extraction (frozen ResNet-18 backbone over the eval loader) and the phase-2 head's 30 epochs."""
    from camtrap_fast.model import build_model, split_backbone_head
    from camtrap_fast.pipelines import LoaderConfig, make_loader
    from camtrap_fast.shards.manifest import load_manifest
    from camtrap_fast.train.features import extract_features
    from camtrap_fast.train.head_config import HeadConfig
    from camtrap_fast.train.head_training import train_head
    from camtrap_fast.train.loops import model_layout
    from camtrap_fast.train.parallelism import choose_parallelism
    from phase2_head import FALLBACK_COUNTS, structured_features

    device = torch.device("cuda" if cuda else "cpu")
    manifest = load_manifest(shards)
    image_size = SIZE if cuda else 64  # on a CPU, a figure only: 224-px ResNet-18 runs at a few images/s there
    config = LoaderConfig(mode="eval", device=str(device), batch_size=args.batch_size, image_size=image_size,
                          workers=choose_parallelism(device).workers)
    model = build_model("resnet18", len(manifest.classes)).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    backbone, _ = split_backbone_head(model)
    count = manifest.splits["train"].samples
    figures = {"device": str(device), "image_size": image_size, "samples": count}
    with make_loader(manifest, "train", config) as loader:
        order = np.arange(count, dtype=np.int64)

        def extract_pass() -> int:
            with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else _nothing():
                features, _ = extract_features(backbone, loader.epoch(order, 0), device,
                                               prepare=lambda x: model_layout(x, device))
            return len(features)

        figures["extraction"] = summary(timed_passes(extract_pass, args.passes, cuda))
        figures["extraction"]["backend"] = loader.backend

    data = json.loads(FALLBACK_COUNTS.read_text())
    names = list(data["train"])
    counts = [max(1, round(data["train"][n] * args.head_rows)) for n in names]
    val_counts = [max(1, round(data["test"].get(n, 0) * args.head_rows)) for n in names]
    train_x, train_y = structured_features(counts, 512, torch.float16, seed=0)
    val_x, val_y = structured_features(val_counts, 512, torch.float16, seed=1)
    torch.manual_seed(0)
    head = torch.nn.Linear(512, len(names)).to(device)
    head_config = HeadConfig(epochs=30, patience=None)
    fit = train_head(head, train_x.to(device), train_y.to(device), val_x.to(device), val_y.to(device), head_config)
    if cuda:
        torch.cuda.synchronize()
    figures["head"] = {"rows": len(train_y), "dim": 512, "classes": len(names), "batch_size": head_config.batch_size,
                       "epochs": 30, "seconds": round(fit.seconds, 2), "target_seconds": 5.0,
                       "scaled_to_155254_rows": round(fit.seconds * 155_254 / len(train_y), 2)}
    return figures


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    raise SystemExit(main())
