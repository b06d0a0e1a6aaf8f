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
