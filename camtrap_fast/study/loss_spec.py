"""`study --loss SPEC`: one loss of a study's grid, NAME[:KEY=VALUE,...], e.g. `ce`, `focal:gamma=2`,
`sigmoid-focal:alpha=0.25,gamma=1`.

KEY is gamma (--focal-gamma), alpha (--focal-alpha: a number, inverse-frequency, or one number per class joined by
`/`), class-weights or beta; what a SPEC leaves out comes from the study's train options (--focal-gamma ...).
The SPEC's canonical text (numbers as %g, keys in the order given) names the loss in the tables, in each run's
study.json and in study.json's "losses"; its folder name under STUDY/runs/REGIME/ is that text made a file name
(`ce` stays `ce`, so a study made before loss SPECs existed keeps its run folders).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from camtrap_fast.errors import ConfigError, UserError
from camtrap_fast.loss_config import LOSSES, LossConfig

KEYS = {"gamma": "focal_gamma", "alpha": "focal_alpha", "class-weights": "class_weights", "beta": "beta"}


@dataclass(frozen=True)
class LossSpec:
    text: str  # canonical
    config: LossConfig

    @property
    def slug(self) -> str:
        return loss_slug(self.text)


def loss_slug(text: str) -> str:
    """A loss SPEC's folder and file name part: `sigmoid-focal:alpha=0.25,gamma=1` -> `sigmoid-focal-alpha0.25-gamma1`."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower().replace("=", "")).strip("-") or "loss"


def parse_loss_spec(text: str, base: LossConfig) -> LossSpec:
    """The loss of `text` on top of `base` (the study's --focal-gamma and friends); UserErrors name `--loss SPEC`."""
    name, _, options = text.strip().partition(":")
    name = name.strip().lower()
    if name not in LOSSES:
        raise UserError(f"--loss {text}: unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    changes: dict[str, object] = {}
    shown = []
    for part in (p.strip() for p in options.split(",") if p.strip()):
        key, equals, value = (s.strip() for s in part.partition("="))
        if key not in KEYS or not equals or not value:
            raise UserError(f"--loss {text}: {part!r} is not KEY=VALUE with KEY one of {', '.join(KEYS)}")
        if KEYS[key] in changes:
            raise UserError(f"--loss {text}: {key} given twice")
        parsed = _value(key, value, text)
        changes[KEYS[key]] = parsed
        shown.append(f"{key}={_show(parsed)}")
    try:
        config = dataclasses.replace(base, name=name, **changes)
    except ConfigError as error:
        raise UserError(f"--loss {text}: {error.field.replace('focal_', '')} {error.value}: {error.problem}") from None
    return LossSpec(name + (":" + ",".join(shown) if shown else ""), config)


def _value(key: str, value: str, text: str):
    if key == "class-weights" or (key == "alpha" and value == "inverse-frequency"):
        return value
    try:
        numbers = tuple(float(v) for v in value.split("/"))
    except ValueError:
        raise UserError(f"--loss {text}: {key}={value} is not a number"
                        + (" (per-class alphas: A1/A2/..., one per class)" if key == "alpha" else "")) from None
    if len(numbers) > 1 and key != "alpha":
        raise UserError(f"--loss {text}: {key} takes one number")
    return numbers if len(numbers) > 1 else numbers[0]


def _show(value) -> str:
    if isinstance(value, tuple):
        return "/".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
