"""TrainConfig: one typed config for a training run, composed of the stages' own configs.

    TrainConfig
      model     ModelConfig     architecture, user weights
      sampling  SamplingSpec    the phase-1 rebalancing regime (sampling.spec)
      loss      LossConfig      the loss of both phases (losses)
      phase1    Phase1Config    phase 1 / baseline: epochs, patience, lr, batch size
      head      HeadConfig      phase 2 on cached features (train.head_training)
      loader    LoaderOptions   the run's part of every LoaderConfig (pipelines.config)
      + shards, two_phase, device, threads, seed, compare, stream_from

Defaults live in these dataclasses only; each validates itself in `__post_init__`. The command line
(`train.options`) overrides them, and the run directory records the result as `config.json`, which
`from_json` reads back to an equal TrainConfig (tested).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from camtrap_fast.errors import ConfigError
from camtrap_fast.loss_config import LossConfig
from camtrap_fast.pipelines.config import LoaderOptions
from camtrap_fast.sampling.spec import SamplingSpec, parse_sampling
from camtrap_fast.train.head_config import HeadConfig

CONFIG_FORMAT = "camtrap-fast-train-config/2"


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "resnet18"  # any torchvision classification model
    weights: Path | None = None  # a state-dict file the user supplies; random init otherwise, as in the study


MONITORS = ("macro-f1", "loss")  # what phase 1's early stopping and best epoch watch on the val split
AUTO_LR = "auto"  # --lr auto: the learning-rate range test (train.lr_find) picks it before phase 1


@dataclass(frozen=True)
class Phase1Config:
    """Phase 1 (the whole of a baseline run): the study's Adam, lr 1e-3, batch 64; early stopping on val macro-F1.

    lr: a number, or "auto" (the run's lr-find suggestion, recorded in RUN/lr_find/). monitor: early stopping and
    the kept epoch follow validation macro-F1 (higher is better) or validation loss (lower). freeze_epochs: the
    first N of the `epochs` train only the final layer (backbone frozen, its BatchNorm in eval mode), then the
    whole network (fast.ai's fine_tune, MEWC)."""

    epochs: int = 30
    patience: int = 5
    lr: float | str = 1e-3
    batch_size: int = 64
    freeze_epochs: int = 0
    monitor: str = "macro-f1"

    def __post_init__(self) -> None:
        for name in ("epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, value, "must be a whole number >= 1")
        if self.lr != AUTO_LR and (isinstance(self.lr, (bool, str)) or not self.lr > 0):
            raise ConfigError("lr", self.lr, f"must be > 0, or {AUTO_LR} (the learning-rate finder picks it)")
        freeze = self.freeze_epochs
        if isinstance(freeze, bool) or not isinstance(freeze, int) or not 0 <= freeze < self.epochs:
            raise ConfigError("freeze_epochs", freeze, f"must be a whole number from 0 to --epochs - 1 "
                              f"({self.epochs - 1}): the whole network trains after the head-only epochs")
        if self.monitor not in MONITORS:
            raise ConfigError("monitor", self.monitor, f"choose {' or '.join(MONITORS)}")


@dataclass(frozen=True)
class TrainConfig:
    shards: Path
    two_phase: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    loss: LossConfig = field(default_factory=LossConfig)
    phase1: Phase1Config = field(default_factory=Phase1Config)
    head: HeadConfig = field(default_factory=HeadConfig)
    loader: LoaderOptions = field(default_factory=LoaderOptions)
    device: str = "auto"  # auto | cpu | cuda | cuda:N (devices.resolve_device)
    threads: int | None = None  # torch CPU threads for training; None: chosen for the machine (train.parallelism)
    seed: int = 0
    compare: Path | None = None  # a baseline run to compare per-species F1 with
    stream_from: str | None = None  # URL prefix of the train shards (http(s)://, s3://, pipe:): streaming mode

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", self.seed, "must be a whole number >= 0")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ConfigError("threads", self.threads, "must be a whole number >= 1")
        if self.head.method != HeadConfig().method and not self.two_phase:
            # A baseline run has no phase 2 to change; `heads RUN` fits any method on a baseline run afterwards.
            raise ConfigError("head.method", self.head.method, "needs --two-phase (a baseline run has no phase 2; "
                              "`camtrap-fast heads RUN` fits phase-2 methods on a finished run)")

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1) + "\n"

    def as_dict(self) -> dict:
        data = {"format": CONFIG_FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, SamplingSpec):
                value = {"spec": value.text, "ros_ratios": value.ros_ratios_text}
            elif dataclasses.is_dataclass(value):
                value = {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
            data[f.name] = _plain(value)
        return data

    @staticmethod
    def from_json(text: str) -> "TrainConfig":
        """The TrainConfig `to_json` wrote; ValueError / KeyError / TypeError for anything else."""
        data = json.loads(text)
        if data.pop("format", None) != CONFIG_FORMAT:
            raise ValueError(f"not a {CONFIG_FORMAT} file")
        sampling = data.pop("sampling")
        sections = {
            "model": lambda d: ModelConfig(d["arch"], _path(d["weights"])),
            "loss": lambda d: LossConfig(**d),
            "phase1": lambda d: Phase1Config(**d),
            "head": lambda d: HeadConfig(**{**d, "betas": tuple(d["betas"])}),
            "loader": lambda d: LoaderOptions(**d),
        }
        values = {name: build(data.pop(name)) for name, build in sections.items()}
        return TrainConfig(
            shards=Path(data.pop("shards")),
            sampling=parse_sampling(sampling["spec"], sampling["ros_ratios"]),
            compare=_path(data.pop("compare")),
            **values,
            **data,
        )

    def differences(self, other: "TrainConfig") -> list[tuple[str, object, object]]:
        """(dotted field name, this value, other value) for every field that differs, in field order."""
        mine, theirs = _flatten(self.as_dict()), _flatten(other.as_dict())
        return [(name, mine.get(name), theirs.get(name)) for name in mine if mine.get(name) != theirs.get(name)]


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _path(value) -> Path | None:
    return None if value is None else Path(value)


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
