"""Sampling: class counts + regime (ROS / RUS / sqrt / balanced) -> exact per-epoch sample orders.

`spec` parses `--sampling`, `plan` fixes per-class targets, `order` draws each
epoch's shuffled order. Pure: no file is read here (reading an epoch's samples,
at random or streamed, is `pipelines.streaming`).
"""

from camtrap_fast.sampling.order import epoch_multiplicity, epoch_order, epoch_rng, shard_for_rank
from camtrap_fast.sampling.plan import SamplingPlan, class_targets, plan_sampling
from camtrap_fast.sampling.spec import PRESETS, SamplingSpec, parse_ros_ratios, parse_sampling

__all__ = [
    "PRESETS",
    "SamplingPlan",
    "SamplingSpec",
    "class_targets",
    "epoch_multiplicity",
    "epoch_order",
    "epoch_rng",
    "parse_ros_ratios",
    "parse_sampling",
    "plan_sampling",
    "shard_for_rank",
]
