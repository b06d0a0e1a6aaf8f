"""TrainConfig: composed of the stages' configs, defaults in the dataclasses only, exact config.json round trip,
errors that name the flag, and the Run's resume checks."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from camtrap_fast.errors import UserError
from camtrap_fast.loss_config import LossConfig
from camtrap_fast.pipelines.config import LoaderOptions
from camtrap_fast.sampling.spec import parse_sampling
from camtrap_fast.train.config import ModelConfig, Phase1Config, TrainConfig
from camtrap_fast.train.head_config import HeadConfig
from camtrap_fast.train.options import FLAGS, add_train_arguments, config_from_args, default_of


def parse(*argv: str) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return config_from_args(Path("shards"), parser.parse_args(list(argv)))


def test_defaults_live_in_the_dataclasses_and_the_cli_gives_none():
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    assert all(value is None for value in vars(parser.parse_args([])).values())
    assert parse() == TrainConfig(shards=Path("shards").absolute())
    helps = {action.option_strings[0]: action.help for action in parser._actions if action.option_strings}
    assert "(default 64)" in helps["--batch-size"] and "(default 30)" in helps["--head-epochs"]
    assert "(default 0.08)" in helps["--crop-scale-min"] and "(default resnet18)" in helps["--arch"]
    assert default_of("phase1.lr") == Phase1Config().lr and default_of("loader.workers") == LoaderOptions().workers


def test_every_flag_reaches_its_field():
    config = parse("--two-phase", "--sampling", "paper-ros-rus-5k", "--ros-ratios", "50:9,inf:3", "--arch",
                   "resnet34", "--loss", "focal", "--focal-gamma", "1.5", "--focal-alpha", "inverse-frequency",
                   "--epochs", "7", "--patience", "2", "--lr", "0.01", "--freeze-epochs", "2", "--monitor", "loss", "--batch-size", "16", "--head-epochs", "4",
                   "--head-lr", "0.02", "--head-batch-size", "8", "--head-patience", "3", "--phase2", "lws",
                   "--backend", "pil",
                   "--image-size", "96", "--crop-scale-min", "0.5", "--workers", "0", "--skip-corrupt",
                   "--eval-crop", "full",
                   "--device", "cpu", "--threads", "3", "--seed", "5", "--stream-from", "pipe:cat x")
    assert config.two_phase and config.model == ModelConfig("resnet34")
    assert config.sampling == parse_sampling("paper-ros-rus-5k", "50:9,inf:3")
    assert config.loss == LossConfig("focal", focal_gamma=1.5, focal_alpha="inverse-frequency")
    assert config.phase1 == Phase1Config(epochs=7, patience=2, lr=0.01, batch_size=16, freeze_epochs=2, monitor="loss")
    assert parse("--lr", "auto").phase1.lr == "auto"
    assert config.head == HeadConfig(epochs=4, lr=0.02, batch_size=8, patience=3, method="lws")
    assert config.loader == LoaderOptions("pil", 96, 0.5, 0, True, "full")
    assert (config.device, config.threads, config.seed, config.stream_from) == ("cpu", 3, 5, "pipe:cat x")
    assert len(FLAGS) == 31  # a new flag needs a line above


def test_config_json_round_trips_exactly(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    config = TrainConfig(
        shards=tmp_path / "shards", two_phase=True, model=ModelConfig("mobilenet_v3_small", weights),
        sampling=parse_sampling("ros:42,rus:126", "1:10,4:8,8:6,inf:4"),
        loss=LossConfig("weighted-ce", class_weights="effective-number", beta=0.99),
        phase1=Phase1Config(3, 2, 0.003, 32), head=HeadConfig(5, 0.01, 16, None, (0.8, 0.99), 1e-7, 2, method="ncm"),
        loader=LoaderOptions("dali", 64, 0.35, 1, True, "full"), device="cuda:1", threads=4, seed=9, compare=tmp_path / "base",
        stream_from="http://x/shards")
    assert TrainConfig.from_json(config.to_json()) == config
    assert TrainConfig.from_json(TrainConfig(shards=Path("/s")).to_json()) == TrainConfig(shards=Path("/s"))
    focal = dataclasses.replace(config, loss=LossConfig("focal", focal_alpha=0.25))
    assert TrainConfig.from_json(focal.to_json()) == focal
    for loss in (LossConfig("sigmoid-focal", focal_gamma=0.5, focal_alpha=0.25),
                 LossConfig("sigmoid-focal", focal_alpha=(0.1, 0.9, 0.25)), LossConfig("focal", focal_alpha=(2.0, 0.5))):
        changed = dataclasses.replace(config, loss=loss)
        assert TrainConfig.from_json(changed.to_json()) == changed
    # a config.json written before --phase2 existed reads as the study's phase 2
    older = config.as_dict()
    del older["head"]["method"]
    assert TrainConfig.from_json(json.dumps(older)).head.method == "retrain"
    # ... and one from before --freeze-epochs, --monitor and --lr auto as the defaults
    for name in ("freeze_epochs", "monitor"):
        del older["phase1"][name]
    assert TrainConfig.from_json(json.dumps(older)).phase1 == Phase1Config(3, 2, 0.003, 32)
    auto = dataclasses.replace(config, phase1=Phase1Config(8, 3, "auto", 32, freeze_epochs=2, monitor="loss"))
    assert TrainConfig.from_json(auto.to_json()) == auto
    # one written before the automatic CPU split: its --workers 2 stays, its torch threads become automatic
    del older["threads"]
    older["loader"]["workers"] = 2
    assert (TrainConfig.from_json(json.dumps(older)).threads, TrainConfig.from_json(json.dumps(older)).loader.workers) \
        == (None, 2)


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "--batch-size 0: must be a whole number >= 1"),
    (["--epochs", "-3"], "--epochs -3: must be a whole number >= 1"),
    (["--head-patience", "0"], "--head-patience 0: must be >= 1 epoch"),
    (["--lr", "0"], "--lr 0.0: must be > 0"),
    (["--image-size", "7"], "--image-size 7: must be a whole number of pixels >= 32"),
    (["--workers", "-1"], "--workers -1: must be a whole number >= 0"),
    (["--crop-scale-min", "1.5"], "--crop-scale-min 1.5: must be in (0, 1]"),
    (["--loss", "hinge"], "--loss hinge: unknown loss"),
    (["--freeze-epochs", "30"], "--freeze-epochs 30: must be a whole number from 0 to --epochs - 1 (29)"),
    (["--monitor", "accuracy"], "--monitor accuracy: choose macro-f1 or loss"),
    (["--loss", "sigmoid-focal", "--focal-alpha", "1.5"], "--focal-alpha 1.5: must be in (0, 1] for sigmoid-focal"),
    (["--loss", "sigmoid-focal", "--focal-alpha", "0.2,1.2"], "--focal-alpha 0.2,1.2: sigmoid-focal's per-class"),
    (["--class-weights", "median"], "--class-weights median: choose one of"),
    (["--backend", "gpu"], "--backend gpu: choose auto, dali, pil"),
    (["--eval-crop", "middle"], "--eval-crop middle: choose center or full"),
    (["--seed", "-1"], "--seed -1: must be a whole number >= 0"),
    (["--threads", "0"], "--threads 0: must be a whole number >= 1"),
    (["--sampling", "bogus"], "--sampling 'bogus': unknown sampling preset"),
    (["--phase2", "svm"], "--phase2 svm: unknown phase-2 method; choose one of retrain, crt, tau-norm"),
    (["--phase2", "crt"], "--phase2 crt: needs --two-phase"),
])
def test_errors_name_the_flag(argv, message):
    with pytest.raises(UserError) as error:
        parse(*argv)
    assert message in str(error.value)


def test_paths_are_absolute_and_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse().shards == tmp_path / "shards"
    with pytest.raises(UserError, match="--weights file not found"):
        parse("--weights", "missing.pt")
    with pytest.raises(UserError, match="--compare needs a finished camtrap-fast training run"):
        parse("--compare", "nowhere")
