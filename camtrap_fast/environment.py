"""What produced a result: package versions, git sha, machine. Recorded in manifests and run directories."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

# simplejpeg: the shard step's JPEG decoder where it is installed (shards/fastjpeg.py; PIL otherwise, same pixels,
# slower), so a shard manifest's or run's speed can be traced to it.
PACKAGES = ("camtrap-fast", "numpy", "pillow", "pillow-simd", "simplejpeg", "torch", "torchvision",
            "nvidia-dali-cuda130", "webdataset")


def package_versions() -> dict[str, str]:
    """Versions from package metadata, so nothing heavy (torch, DALI) is imported just to name it."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_sha() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def machine() -> dict[str, str]:
    import os

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": str(os.cpu_count())}
