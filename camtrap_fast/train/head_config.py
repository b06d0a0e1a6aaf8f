"""HeadConfig: how phase 2 trains the final layer on cached features (no torch at import: `--help` reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from camtrap_fast.errors import ConfigError, UserError

# The phase-2 methods (train.heads.registry maps each to its fit function). retrain is the study's phase 2;
# the others act on the same cached features (Kang et al. 2020; Menon et al. 2021; Ren et al. 2020).
PHASE2_METHODS = ("retrain", "crt", "tau-norm", "lws", "ncm", "logit-adjust", "balanced-softmax")


@dataclass(frozen=True)
class HeadConfig:
    """Phase-2 head training (the loss and the seed are given beside it: they are the run's).

    method: which phase-2 method `train --two-phase` fits (PHASE2_METHODS; `heads` fits any of them later).

    patience: epochs without a better validation macro F1 before stopping (None: train all epochs).
    num_threads: CPU threads for the training loop (torch's, and the compiled loop's own, train/headloop.py);
    None means 1 for the steps, because threads that share their cores with other work stall each step at its
    barriers (on the 2-core VM 2 threads took 2.9 s against 4 s on 1 when idle, 10x longer a step beside one busy
    process), and every usable core for the validation logits, which have no barrier. public_ops: use torch's
    public softmax and Adam instead of the private kernels (the benchmark's comparison; the results are the same).
    """

    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    patience: int | None = 5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    num_threads: int | None = None
    public_ops: bool = False
    method: str = "retrain"

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
        if self.method not in PHASE2_METHODS:
            raise ConfigError("method", self.method, f"unknown phase-2 method; choose one of {', '.join(PHASE2_METHODS)}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ConfigError("num_threads", self.num_threads, "must be >= 1 or None")


def parse_methods(text: str | None) -> tuple[str, ...]:
    """`all` (or None) -> every method; `m1,m2` -> those, in the order given; UserError naming --methods."""
    if text is None or text.strip() == "all":
        return PHASE2_METHODS
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in PHASE2_METHODS]
    if unknown or not names:
        raise UserError(f"--methods {text}: unknown method {unknown[0] if unknown else '(none)'!r}; "
                        f"give all or a comma-separated list of {', '.join(PHASE2_METHODS)}")
    if len(set(names)) != len(names):
        raise UserError(f"--methods {text}: a method is named twice")
    return names
