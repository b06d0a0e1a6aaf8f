"""`--sampling SPEC` and `--ros-ratios SCHEDULE` -> a frozen `SamplingSpec`.

The study's regimes (Malik et al., NeurIPS 2021 workshop) are presets; anything
else is written as comma-separated terms, e.g. `ros:5000,rus:15000`. Whatever
order the terms come in, ROS is applied before the RUS cap, as in the study.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from camtrap_fast.errors import UserError

# (upper bound, ratio): a class with n < bound (and n below the ROS cap) is oversampled n * ratio times.
RosRatios = tuple[tuple[float, int], ...]

PAPER_ROS_RATIOS: RosRatios = ((100, 10), (500, 8), (1000, 6), (math.inf, 4))
PAPER_ROS_CAP = 5000
PAPER_RUS_CAP = 15000

PRESETS = {
    "none": "",
    "paper-ros": f"ros:{PAPER_ROS_CAP}",
    "paper-rus": f"rus:{PAPER_RUS_CAP}",
    "paper-ros-rus-15k": f"ros:{PAPER_ROS_CAP},rus:{PAPER_RUS_CAP}",
    "paper-ros-rus-5k": f"ros:{PAPER_ROS_CAP},rus:5000",
}

VALID_FORMS = (
    f"valid forms: a preset ({', '.join(PRESETS)}), sqrt, balanced:N, "
    "or terms ros:CAP and/or rus:CAP joined by commas (e.g. ros:5000,rus:15000)"
)
VALID_RATIO_FORMS = "write BOUND:RATIO terms with increasing bounds, ending in inf (e.g. 100:10,500:8,1000:6,inf:4)"


@dataclass(frozen=True)
class SamplingSpec:
    """How to turn per-class image counts into per-epoch targets (see `plan.target_counts`)."""

    ros_cap: int | None = None  # oversample classes below this size
    rus_cap: int | None = None  # then cap every class at this size
    sqrt: bool = False  # sampling probability proportional to sqrt(n), same total
    balanced: int | None = None  # every non-empty class exactly this many
    ros_ratios: RosRatios = PAPER_ROS_RATIOS

    def __post_init__(self) -> None:
        for name in ("ros_cap", "rus_cap", "balanced"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive whole number of images, got {value!r}")
        if (self.sqrt or self.balanced is not None) and (
            self.ros_cap is not None or self.rus_cap is not None or (self.sqrt and self.balanced is not None)
        ):
            raise ValueError("sqrt and balanced:N stand alone; do not combine them with ros, rus or each other")
        check_ros_ratios(self.ros_ratios)

    @property
    def is_identity(self) -> bool:
        return not (self.ros_cap or self.rus_cap or self.sqrt or self.balanced)

    @property
    def text(self) -> str:
        """The canonical SPEC string, which parses back to this spec (ratios aside)."""
        if self.sqrt:
            return "sqrt"
        if self.balanced is not None:
            return f"balanced:{self.balanced}"
        terms = [f"ros:{self.ros_cap}"] * (self.ros_cap is not None) + [f"rus:{self.rus_cap}"] * (
            self.rus_cap is not None
        )
        return ",".join(terms) or "none"

    @property
    def ros_ratios_text(self) -> str:
        return format_ros_ratios(self.ros_ratios)


def check_ros_ratios(ratios: RosRatios) -> None:
    """Raise ValueError unless bounds increase strictly, end in inf, and ratios are whole numbers >= 1."""
    if not ratios:
        raise ValueError(f"the ROS ratio schedule is empty; {VALID_RATIO_FORMS}")
    previous = 0.0
    for bound, ratio in ratios:
        if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
            raise ValueError(f"ROS ratio {ratio!r} is not a whole number >= 1; {VALID_RATIO_FORMS}")
        if not bound > previous:
            raise ValueError(f"ROS bound {bound} does not increase; {VALID_RATIO_FORMS}")
        previous = bound
    if previous != math.inf:
        raise ValueError(f"the ROS ratio schedule must end with inf:RATIO to cover every size; {VALID_RATIO_FORMS}")


def format_ros_ratios(ratios: RosRatios) -> str:
    return ",".join(f"{'inf' if bound == math.inf else int(bound)}:{ratio}" for bound, ratio in ratios)


def parse_ros_ratios(text: str) -> RosRatios:
    """Parse `100:10,500:8,1000:6,inf:4` (n < 100 -> x10, ...); a UserError saying the valid form otherwise."""
    ratios = []
    for term in text.split(","):
        bound_text, sep, ratio_text = term.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            bound = math.inf if bound_text.strip().lower() == "inf" else int(bound_text)
            ratios.append((bound, int(ratio_text)))
        except ValueError:
            message = f"--ros-ratios {text!r}: term {term.strip()!r} is not BOUND:RATIO; {VALID_RATIO_FORMS}"
            raise UserError(message) from None
    try:
        check_ros_ratios(tuple(ratios))
    except ValueError as error:
        raise UserError(f"--ros-ratios {text!r}: {error}") from None
    return tuple(ratios)


def parse_sampling(text: str, ros_ratios: str | RosRatios | None = None) -> SamplingSpec:
    """Parse a preset name or `ros:CAP,rus:CAP` / `sqrt` / `balanced:N` terms into a SamplingSpec."""
    if ros_ratios is None:
        ratios = PAPER_ROS_RATIOS
    else:
        ratios = parse_ros_ratios(ros_ratios) if isinstance(ros_ratios, str) else tuple(ros_ratios)
    name = text.strip().lower()
    expanded = PRESETS.get(name, name)
    fields: dict[str, object] = {}
    for term in filter(None, (t.strip() for t in expanded.split(","))):
        kind, sep, value = term.partition(":")
        field = {"ros": "ros_cap", "rus": "rus_cap", "balanced": "balanced", "sqrt": "sqrt"}.get(kind)
        if field is None:
            what = "unknown sampling preset" if "," not in name and ":" not in name else "unknown term"
            raise UserError(f"--sampling {text!r}: {what} {term!r}; {VALID_FORMS}")
        if field in fields:
            raise UserError(f"--sampling {text!r}: {kind} is given twice; {VALID_FORMS}")
        if field == "sqrt":
            if sep:
                raise UserError(f"--sampling {text!r}: sqrt takes no value; {VALID_FORMS}")
            fields[field] = True
            continue
        try:
            fields[field] = int(value)
        except ValueError:
            message = f"--sampling {text!r}: {term!r} needs a whole number, as in {kind}:5000; {VALID_FORMS}"
            raise UserError(message) from None
    if not fields and name not in PRESETS:
        raise UserError(f"--sampling {text!r}: empty; {VALID_FORMS}")
    try:
        return SamplingSpec(ros_ratios=ratios, **fields)
    except ValueError as error:
        raise UserError(f"--sampling {text!r}: {error}; {VALID_FORMS}") from None
