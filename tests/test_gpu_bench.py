"""bench/gpu.sh runs on a CPU-only machine too: the GPU parts are skipped and say so, the CPU parts give figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour; on a GPU run bench/gpu.sh")
def test_gpu_benchmark_runs_on_cpu_and_says_what_it_skipped(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_BENCH_SECONDS": "300"}
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh"), "--small", "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=330)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["cuda"] is False and "no CUDA GPU" in result["note"]
    for name in ("dali_mixed", "torchvision_nvjpeg", "train"):
        assert "no CUDA GPU" in result[name]["skipped"], name
    assert result["data"]["samples"]["train"] > 0 and result["data"]["shard_size_px"] == 256
    phase2 = result["phase2"]
    assert "error" not in phase2, phase2
    assert phase2["device"] == "cpu" and phase2["extraction"]["images_per_s"] > 0
    assert phase2["head"]["epochs"] == 30 and phase2["head"]["seconds"] > 0
    assert result["targets"]["dali_mixed_images_per_s"] == 15_000 and result["seconds"] < 300
