"""Shared test fixtures: where the real photos are, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real camera-trap photos live beside the repository (../shared/data), never inside it.
DATA = Path(os.environ.get("CAMTRAP_FAST_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config):
    if not DATA.is_dir():
        raise pytest.UsageError(f"test data not found at {DATA}; set CAMTRAP_FAST_DATA to the shared/data folder")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cli(capsys):
    """Run `camtrap-fast ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from camtrap_fast.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """A tiny synthetic shard set (~350 images, 52 classes, 40 px), made once per test session and shared:
    tests must not change it (copy it first)."""
    from camtrap_fast.cli import main

    root = tmp_path_factory.mktemp("tiny")
    assert main(["synth", str(root / "images"), "--scale", "0.0005", "--size", "48", "--seed", "1"]) == 0
    assert main(["shard", str(root / "images" / "annotations.json"), str(root / "shards"), "--size", "40",
                 "--quiet"]) == 0
    return root / "shards"


# test_html.py and test_browser.py (issue 14): a two-phase run on the tiny set and a crop run on ENA24's detections.
REPORT_RUN_OPTIONS = ["--epochs", "1", "--patience", "1", "--image-size", "32", "--batch-size", "32", "--workers",
                      "0", "--crop-scale-min", "0.5", "--backend", "pil", "--device", "cpu", "--quiet",
                      "--head-epochs", "3"]


@pytest.fixture(scope="session")
def report_runs(tiny_shards, tmp_path_factory, data_dir):
    """A two-phase run on the tiny set, a crop run on ENA24's detections and a one-seed study of two regimes."""
    from camtrap_fast.cli import main

    root = tmp_path_factory.mktemp("html")
    assert main(["train", str(tiny_shards), "--out", str(root / "two-phase"), "--two-phase", "--sampling",
                 "ros:20,rus:40", *REPORT_RUN_OPTIONS]) == 0
    ena = data_dir / "ena24-small"
    assert main(["shard", str(ena / "labels.csv"), str(root / "crop-shards"), "--detections",
                 str(ena / "md_annotations.json"), "--size", "48", "--split", "0.34,0.33,0.33", "--quiet"]) == 0
    assert main(["train", str(root / "crop-shards"), "--out", str(root / "crops"), *REPORT_RUN_OPTIONS]) == 0
    assert main(["study", str(tiny_shards), "--out", str(root / "study"), "--regime", "none", "--regime",
                 "ros:20,rus:40", "--seeds", "0", "--methods", "retrain,ncm", *REPORT_RUN_OPTIONS]) == 0
    return root
