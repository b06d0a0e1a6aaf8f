"""`Session`: what a training run decides once, before any epoch, and every phase reads.

The config, the run directory, the shards, the device and process group, and the facts derived from
them (the phase-1 plan, the split sizes, which split the reports score) are resolved here in one
place, so phase 1 and phase 2 take a session rather than a dozen arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from camtrap_fast.errors import UserError
from camtrap_fast.pipelines import LoaderConfig
from camtrap_fast.sampling import SamplingPlan, plan_sampling
from camtrap_fast.shards.manifest import Manifest
from camtrap_fast.train.config import TrainConfig
from camtrap_fast.train.distributed import World
from camtrap_fast.train.rundir import Run


@dataclass(frozen=True)
class Session:
    config: TrainConfig
    run: Run
    manifest: Manifest
    device: torch.device
    world: World
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.eval_split not in self.sizes:
            raise UserError(f"{self.manifest.root}: needs a val or test split to evaluate on (reshard with --split)")
        if self.config.stream_from and self.world.distributed:
            raise UserError("--stream-from with torchrun is not supported yet: each rank would need its own shard part")

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.classes)

    @cached_property
    def plan(self) -> SamplingPlan:
        """Phase 1's per-class epoch targets, from the train split's counts."""
        return plan_sampling(self.manifest.splits["train"].class_counts, self.config.sampling)

    @property
    def train_counts(self) -> np.ndarray:
        """Training images per class, as sharded: the original, imbalanced distribution."""
        return np.asarray(list(self.manifest.splits["train"].class_counts.values()), dtype=np.int64)

    @property
    def epoch_counts(self) -> np.ndarray:
        """Images per class in one phase-1 epoch: the plan's targets."""
        return np.asarray(self.plan.target, dtype=np.int64)

    @cached_property
    def sizes(self) -> dict[str, int]:
        """Samples per split, for the splits that have any."""
        return {split: info.samples for split, info in self.manifest.splits.items() if info.samples}

    @property
    def eval_split(self) -> str:
        """The split the reports score: test, or val when there is no test split."""
        test = self.manifest.splits.get("test")
        return "test" if test is not None and test.samples else "val"

    def loader_config(self, mode: str) -> LoaderConfig:
        """Every loader of the run: the run's loader options, batch size and device; seeded per rank."""
        config = self.config
        return config.loader.for_mode(mode, config.phase1.batch_size, str(self.device), config.seed + self.world.rank)
