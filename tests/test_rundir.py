"""Run: the run directory's layout, what it records, and the resume checks (options and shards)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import stat
from importlib import metadata
from pathlib import Path

import pytest
import torch

from camtrap_fast.errors import UserError
from camtrap_fast.shards.manifest import Manifest, SplitInfo
from camtrap_fast.train.config import Phase1Config, TrainConfig
from camtrap_fast.train.rundir import Run


def manifest(root: Path, fingerprint: str = "f" * 32) -> Manifest:
    root.mkdir(parents=True, exist_ok=True)
    splits = {"train": SplitInfo(3, {"a": 2, "b": 1}, ("train/shard-000000.tar",)),
              "test": SplitInfo(2, {"a": 1, "b": 1}, ("test/shard-000000.tar",))}
    made = Manifest(("a", "b"), splits, 40, 90, fingerprint, 0, root=root)
    made.save()
    return made


@pytest.fixture
def started(tmp_path):
    shards = manifest(tmp_path / "shards")
    config = TrainConfig(shards=shards.root.absolute(), phase1=Phase1Config(epochs=3))
    run = Run(tmp_path / "run")
    run.start(config, shards, torch.device("cpu"))
    return run, config, shards


def test_start_records_config_classes_preprocessing_and_shards(started):
    run, config, shards = started
    assert run.load_config() == config
    assert run.classes() == ["a", "b"]
    assert run.preprocessing() == {"shard_size": 40, "shard_quality": 90, "image_size": 224, "eval_crop": "center",
                                   "crops": {}}
    assert json.loads((run.root / "shards.json").read_text())["fingerprint"] == shards.fingerprint
    environment = json.loads((run.root / "environment.json").read_text())
    assert environment["device"] == "cpu"
    for name in ("torch", "numpy", "simplejpeg"):  # simplejpeg: the shard decoder, where installed (.ci/run does)
        installed = importlib.util.find_spec(name.replace("-", "_")) is not None
        recorded = environment["versions"].get(name)
        assert recorded == (metadata.version(name) if installed else None), name
    for name in ("config.json", "classes.json"):
        assert stat.S_IMODE((run.root / name).stat().st_mode) & 0o044  # readable by others (umask 022)


def test_new_run_refuses_a_used_folder(started, tmp_path):
    run, _, _ = started
    with pytest.raises(UserError, match="run directory is not empty; pass --resume"):
        run.check_new()
    Run(tmp_path / "fresh").check_new()  # a new folder is fine


def test_resume_names_every_option_that_differs(started):
    run, config, shards = started
    run.check_resume(dataclasses.replace(config, phase1=Phase1Config(epochs=10)), shards)  # --epochs extends
    other = dataclasses.replace(config, seed=4, phase1=Phase1Config(epochs=3, batch_size=32))
    with pytest.raises(UserError) as error:
        run.check_resume(other, shards)
    message = str(error.value)
    assert "--batch-size 64 in the run, 32 now" in message and "--seed 0 in the run, 4 now" in message
    assert "\n" not in message
    # what phase 1 learns from: head-only epochs, the early-stopping score, the lr rule
    for changed, named in ((Phase1Config(epochs=3, freeze_epochs=1), "--freeze-epochs 0 in the run, 1 now"),
                           (Phase1Config(epochs=3, monitor="loss"), "--monitor macro-f1 in the run, loss now"),
                           (Phase1Config(epochs=3, lr="auto"), "--lr 0.001 in the run, auto now")):
        with pytest.raises(UserError, match=named):
            run.check_resume(dataclasses.replace(config, phase1=changed), shards)


def test_resume_refuses_reshared_data(started, tmp_path):
    run, config, _ = started
    resharded = manifest(tmp_path / "shards", fingerprint="e" * 32)  # same path, other options or inputs
    with pytest.raises(UserError, match="holds other shards than the ones .* was trained on"):
        run.check_resume(config, resharded)


def test_moved_shards_are_named_and_accepted_by_path(started, tmp_path):
    run, _, shards = started
    moved = tmp_path / "moved"
    shards.root.rename(moved)
    with pytest.raises(UserError, match="not there any more; pass --shards NEW_PATH"):
        run.manifest()
    assert run.manifest(moved).fingerprint == shards.fingerprint
    manifest(tmp_path / "other", fingerprint="0" * 32)
    with pytest.raises(UserError, match="holds other shards"):
        run.manifest(tmp_path / "other")


def test_no_model_yet_is_a_clear_error(started):
    run, _, _ = started
    with pytest.raises(UserError, match="the run has no trained model yet"):
        run.load_model(torch.device("cpu"))
