"""The study's regimes at another dataset's size: caps and ROS size bands scaled by its training images over
Snapshot Serengeti season 9's, so a small dataset gets the study's proportions rather than its absolute numbers.

Unscaled, the presets mean little on a small set: paper-rus's 15,000 cap keeps every image of a 1,300-image
set, and paper-ros's 5,000 cap oversamples every class (x4 to x10), making epochs up to ten times longer.
"""

from __future__ import annotations

import dataclasses
import math

from camtrap_fast.sampling.spec import RosRatios, SamplingSpec

# Snapshot Serengeti season 9's training images: the size the study's caps and bands were chosen for.
STUDY_TRAIN_IMAGES = 155_254
MIN_CAP = 2  # a cap below 2 would leave a class one image per epoch, whatever its size


def scale_factor(train_images: int) -> float:
    """This dataset's training images over the study's."""
    return train_images / STUDY_TRAIN_IMAGES


def scale_ros_ratios(ratios: RosRatios, factor: float) -> RosRatios:
    """Each finite band bound times `factor`, rounded, kept >= 1 and strictly increasing; ratios unchanged."""
    scaled, previous = [], 0
    for bound, ratio in ratios:
        if bound == math.inf:
            scaled.append((math.inf, ratio))
            continue
        previous = max(previous + 1, round(bound * factor))
        scaled.append((previous, ratio))
    return tuple(scaled)


def scale_spec(spec: SamplingSpec, factor: float, scale_ratios: bool = True) -> SamplingSpec:
    """`spec` with its ROS and RUS caps times `factor` (at least MIN_CAP; a RUS cap never below the ROS cap, as
    in every study regime) and, with `scale_ratios`, its ROS bands too. sqrt and balanced:N are left as they are:
    sqrt has no size in it, and balanced:N is the user's own number."""
    ros = None if spec.ros_cap is None else max(MIN_CAP, round(spec.ros_cap * factor))
    rus = None if spec.rus_cap is None else max(ros or MIN_CAP, round(spec.rus_cap * factor))
    ratios = scale_ros_ratios(spec.ros_ratios, factor) if scale_ratios else spec.ros_ratios
    return dataclasses.replace(spec, ros_cap=ros, rus_cap=rus, ros_ratios=ratios)

