"""Training: phase 1 on the rebalanced plan, phase 2 on cached features, reports; eval and predict reuse it."""

from camtrap_fast.train.config import TrainConfig
from camtrap_fast.train.run import evaluate_run, load_run_model, train

__all__ = ["TrainConfig", "evaluate_run", "load_run_model", "train"]
