"""HeadConfig: how phase 2 trains the final layer on cached features (no torch at import: `--help` reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from camtrap_fast.errors import ConfigError


@dataclass(frozen=True)
class HeadConfig:
    """Phase-2 head training (the loss and the seed are given beside it: they are the run's).

    patience: epochs without a better validation macro F1 before stopping (None: train all epochs).
    num_threads: torch CPU threads for the training loop; None means 1, because its matmuls are too small
    to gain from more threads, and OpenMP threads that share their cores with other work can stall each
    step by milliseconds. public_ops: use torch's public softmax and Adam instead of the private kernels
    (the benchmark's comparison; the results are the same).
    """

    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    patience: int | None = 5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    num_threads: int | None = None
    public_ops: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, value, "must be a whole number >= 1")
        for name in ("lr", "eps"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, getattr(self, name), "must be > 0")
        if self.patience is not None and (isinstance(self.patience, bool) or self.patience < 1):
            raise ConfigError("patience", self.patience, "must be >= 1 epoch (or None: no early stopping)")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError("betas", self.betas, "must be two numbers in [0, 1)")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError("num_threads", self.num_threads, "must be >= 1 or None")
