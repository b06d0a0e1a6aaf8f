"""Training: phase 1 on the rebalanced plan, phase 2 on cached features, reports; eval and predict reuse it.

`config` (TrainConfig) and `options` (its command-line flags) say what to train; `rundir` (Run) owns the
run directory; `session` holds what a run decides once (with `parallelism`, the split of the CPUs between
loader workers and torch threads); `phase1`, `features`, `head_training` and
`phase2` do the work, `loops` holds the inner loops and `evaluation` scores and reports.

The names below are imported on first use, so that building the command line (which reads the
options' defaults) never pays for importing torch.
"""

from camtrap_fast.lazy import lazy_attributes

_EXPORTS = {
    "Run": "camtrap_fast.train.rundir",
    "TrainConfig": "camtrap_fast.train.config",
    "evaluate_run": "camtrap_fast.train.evaluation",
    "train": "camtrap_fast.train.training",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
