"""Sampling: class counts + regime (ROS / RUS / sqrt / balanced) -> exact per-epoch sample orders.

`spec` parses `--sampling`, `plan` fixes per-class targets, `order` draws each
epoch's shuffled order (random access), `streaming` emits the same epoch from
sequentially read shards. The streaming module is not imported here so that
planning never pays for webdataset.
"""

from camtrap_fast.sampling.order import epoch_multiplicity, epoch_order, epoch_rng, iter_epoch_samples, shard_for_rank
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
    "iter_epoch_samples",
    "parse_ros_ratios",
    "parse_sampling",
    "plan_sampling",
    "shard_for_rank",
]
