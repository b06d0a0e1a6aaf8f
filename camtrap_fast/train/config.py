"""TrainConfig: every knob of a training run, validated once; saved resolved into the run directory."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from camtrap_fast.errors import UserError

LOSSES = ("ce", "focal", "weighted-ce")


@dataclass(frozen=True)
class TrainConfig:
    shards: Path
    out: Path
    two_phase: bool = False
    arch: str = "resnet18"
    weights: Path | None = None  # a state-dict file the user supplies; random init otherwise, as in the study
    sampling: str = "none"  # phase-1 rebalancing (preset or terms, see `camtrap-fast plan`)
    ros_ratios: str | None = None
    loss: str = "ce"
    focal_gamma: float = 2.0
    focal_alpha: str | None = None  # a number or "inverse-frequency"
    class_weights: str = "inverse-frequency"  # for weighted-ce: or "effective-number"
    # The study's phase-1 values: Adam, lr 1e-3, batch 64.
    epochs: int = 30
    patience: int = 5
    lr: float = 1e-3
    batch_size: int = 64
    head_epochs: int = 30
    head_lr: float = 1e-3
    head_batch_size: int = 64
    head_patience: int = 5
    backend: str = "auto"
    device: str = "auto"
    image_size: int = 224
    crop_scale_min: float = 0.08
    workers: int = 2
    seed: int = 0
    resume: bool = False
    compare: Path | None = None  # a baseline run to compare per-species F1 with
    stream_from: str | None = None  # URL prefix of the train shards (http(s)://, s3://, pipe:): streaming mode

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UserError(f"--loss {self.loss}: choose from {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "head_epochs", "head_batch_size", "image_size", "workers"):
            if getattr(self, name) < (0 if name == "workers" else 1):
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be positive")
        if self.patience < 1 or self.head_patience < 1:
            raise UserError("--patience must be at least 1 epoch")
        if not (self.lr > 0 and self.head_lr > 0):
            raise UserError("--lr must be positive")
        if not 0 < self.crop_scale_min <= 1:
            raise UserError(f"--crop-scale-min {self.crop_scale_min}: must be in (0, 1]")
        if self.weights is not None and not Path(self.weights).is_file():
            raise UserError(f"{self.weights}: --weights file not found")
        if self.compare is not None and not (Path(self.compare) / "config.json").is_file():
            raise UserError(f"{self.compare}: --compare needs a finished camtrap-fast training run directory")

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in data.items()}, indent=1) + "\n"

    @staticmethod
    def from_json(text: str) -> "TrainConfig":
        data = json.loads(text)
        for name in ("shards", "out", "weights", "compare"):
            if data.get(name) is not None:
                data[name] = Path(data[name])
        known = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in data.items() if k in known})

    def as_dict(self) -> dict:
        return json.loads(self.to_json())


