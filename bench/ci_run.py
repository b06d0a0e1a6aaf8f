"""A small two-phase run for the CI benchmarks that need one (bench/phase2.py, bench/phase2_methods.py --ci).

`make demo`'s run takes ~6 minutes; this one (synthetic images at scale 0.004, 40-px shards, 32-px crops, one
phase-1 epoch) takes well under a minute, made with the CLI as a user would, and is reused while it exists.

    python bench/ci_run.py [DIR]   # prints the run directory
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent / "results" / "ci-run"


def ci_run(root: Path = DEFAULT) -> Path:
    run = root / "runs" / "two-phase"
    if (run / "phase2" / "metrics.json").is_file():
        return run
    cli = [sys.executable, "-m", "camtrap_fast"]
    images, shards = root / "images", root / "shards"
    if not (images / "annotations.json").is_file():
        subprocess.run([*cli, "synth", str(images), "--scale", "0.004", "--overwrite"], check=True,
                       stdout=subprocess.DEVNULL)
    if not (shards / "manifest.json").is_file():
        subprocess.run([*cli, "shard", str(images / "annotations.json"), str(shards), "--size", "40",
                        "--shard-size", "1000", "--quiet", "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    resume = ["--resume"] if (run / "config.json").is_file() else []  # a killed earlier attempt
    subprocess.run([*cli, "train", str(shards), "--out", str(run), "--two-phase", "--epochs", "1", "--image-size",
                    "32", "--quiet", *resume], check=True, stdout=subprocess.DEVNULL)
    return run


if __name__ == "__main__":
    print(ci_run(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))
