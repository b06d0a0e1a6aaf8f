"""`Session`: what a training run decides once, before any epoch, and every phase reads.

The config, the run directory, the shards, the device and process group, and the facts derived from
them (the phase-1 plan, the split sizes, which split the reports score) are resolved here in one
place, so phase 1 and phase 2 take a session rather than a dozen arguments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from camtrap_fast.errors import UserError
from camtrap_fast.pipelines import LoaderConfig
from camtrap_fast.report import METRICS_FILE, read_metrics
from camtrap_fast.sampling import SamplingPlan, plan_sampling
from camtrap_fast.shards.manifest import Manifest
from camtrap_fast.train.config import TrainConfig
from camtrap_fast.train.distributed import World
from camtrap_fast.train.parallelism import Parallelism, choose_parallelism
from camtrap_fast.train.rundir import Run

# The last partial batch of a phase-1 epoch is dropped (usual in training: a tiny batch gives BatchNorm noisy
# statistics) only while that loses at most this fraction of the epoch; otherwise it is trained on too, so a
# small training split is never silently trained on nothing. A batch of 1 is always dropped: BatchNorm cannot
# normalize one sample at the last stage's 1x1 resolution.
MAX_DROPPED_FRACTION = 0.05


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
        if self.config.phase1.freeze_epochs and self.world.distributed:
            raise UserError("--freeze-epochs with torchrun is not supported yet: DistributedDataParallel fixes the "
                            "trained parameters when it wraps the model; train on one process")
        if self.config.phase1.lr == "auto" and (self.world.distributed or self.config.stream_from):
            raise UserError("--lr auto runs the range test on the local training plan, one process: give --lr "
                            "with torchrun or --stream-from (find it first with `camtrap-fast lr-find SHARDS`)")
        if self.config.stream_from and self.world.distributed:
            raise UserError("--stream-from with torchrun is not supported yet: each rank would need its own shard part")
        if self.epoch_samples < 2:
            raise UserError(f"{self.manifest.root}: a phase-1 epoch has {self.epoch_samples} training image(s) "
                            f"(sampling {self.config.sampling.text}); at least 2 are needed to train")
        alphas = self.config.loss.alpha_classes()
        if alphas is not None and alphas != len(self.classes):
            raise UserError(f"--focal-alpha: {alphas} values for the {len(self.classes)} classes of "
                            f"{self.manifest.root}; give one per class, in the manifest's order, or one number")
        self._check_compare()

    def _check_compare(self) -> None:
        compare = self.config.compare
        if compare is None:
            return
        if not self.config.two_phase:
            raise UserError(f"{compare}: --compare charts phase 2 against a baseline run; add --two-phase "
                            "(or leave --compare out)")
        compared = Run(compare)
        theirs = compared.classes()
        if theirs != self.classes:
            raise UserError(f"{compare}: --compare needs a run on the same classes, in the same order; it has "
                            f"{len(theirs)} classes, these shards {len(self.classes)}")
        # Read only after this run's phase 2, so checked now: a baseline killed mid-training would fail at the end.
        final = 2 if compared.load_config().two_phase else 1
        metrics_dir = compared.phase_dir(final)
        if not (metrics_dir / METRICS_FILE).is_file():
            raise UserError(f"{compare}: --compare needs a finished run, and its phase {final} has not finished "
                            f"({metrics_dir / METRICS_FILE} missing); finish it with `train ... --resume` first")
        read_metrics(metrics_dir)

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

    @property
    def epoch_samples(self) -> int:
        """Samples one rank trains on per phase-1 epoch (ranks get equal parts, padded by wrap-around)."""
        return -(-self.plan.total_target // self.world.world_size)

    @property
    def drop_last(self) -> bool:
        """Whether phase 1 drops each epoch's last partial batch (see MAX_DROPPED_FRACTION)."""
        left = self.epoch_samples % self.config.phase1.batch_size
        return left < 2 or left <= MAX_DROPPED_FRACTION * self.epoch_samples

    @property
    def images_per_epoch(self) -> int:
        """What a rank's phase-1 epoch actually trains on, after the drop_last rule."""
        batch = self.config.phase1.batch_size
        return self.epoch_samples // batch * batch if self.drop_last else self.epoch_samples

    @cached_property
    def parallelism(self) -> Parallelism:
        """This machine's split of the CPUs between loader workers and torch threads (given numbers kept)."""
        return choose_parallelism(self.device, self.config.loader.workers, self.config.threads)

    def loader_config(self, mode: str) -> LoaderConfig:
        """Every loader of the run: the run's loader options, batch size, device and split; seeded per rank."""
        config, split = self.config, self.parallelism
        loader = config.loader.for_mode(mode, config.phase1.batch_size, str(self.device), config.seed + self.world.rank,
                                        workers=split.workers, worker_nice=split.worker_nice)
        return dataclasses.replace(loader, drop_last=self.drop_last) if mode == "train" else loader

    def notes(self) -> list[str]:
        """What the user should know about this run's set-up: printed at the start, kept in the reports."""
        notes = []
        batch = self.config.phase1.batch_size
        if self.epoch_samples < batch:
            notes.append(f"a phase-1 epoch has {self.epoch_samples} images, fewer than --batch-size {batch}: "
                         f"each epoch is one batch of {self.images_per_epoch}")
        elif not self.drop_last:
            notes.append(f"each phase-1 epoch also trains on its last partial batch of "
                         f"{self.epoch_samples % batch} images (dropping it would lose more than "
                         f"{MAX_DROPPED_FRACTION:.0%} of the epoch)")
        return notes + self.score_warnings()

    def score_warnings(self) -> list[str]:
        """What the reported scores are not: said again beside them at the end."""
        warnings = []
        if self.eval_split == "val":
            warnings.append("the shards have no test split: reported scores are on val, the split that also "
                            "chose the best epoch (model-selection scores, optimistic); reshard with a test fraction")
        if "val" not in self.sizes:
            warnings.append("the shards have no val split: early stopping is off and the last epoch is kept")
        return warnings
