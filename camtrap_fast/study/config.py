"""StudyConfig: what `camtrap-fast study` runs, and STUDY/study.json, which a rerun into the same folder must match.

A study is regimes x losses x seeds, each one an ordinary training run whose TrainConfig is the study's train
options with four fields set per run: the sampling (the regime), the loss, the seed, and two_phase (every
rebalanced regime; the baseline `none` runs phase 1 alone and gets its phase-2 methods from `heads`).

    STUDY/runs/REGIME/LOSS/seed-S/   the run (train.rundir's layout) + study.json {"regime", "loss", "seed"},
                                     written last: a run that has it is finished
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.sampling.spec import PRESETS, SamplingSpec, parse_sampling
from camtrap_fast.train.config import TrainConfig
from camtrap_fast.train.head_config import PHASE2_METHODS
from camtrap_fast.study.loss_spec import LossSpec, parse_loss_spec
from camtrap_fast.train.options import FLAG_OF_FIELD

STUDY_FORMAT = "camtrap-fast-study/1"
# The study's baseline and four two-phase models (Malik et al. 2021, Table 1), in its order.
DEFAULT_REGIMES = ("none", "paper-ros", "paper-rus", "paper-ros-rus-15k", "paper-ros-rus-5k")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_LOSS = "ce"  # the study's
# Train options a rerun may change: where and how fast a run trains, not what it learns (loader workers never
# change a crop: crops depend on seed, epoch and position only).
RERUN_CHANGES = ("device", "loader.workers", "threads")
RUN_MARKER = "study.json"


@dataclass(frozen=True)
class Regime:
    """One --regime: the SPEC as given and the SamplingSpec it resolved to (scaled, with --scale-regimes)."""

    given: str
    spec: SamplingSpec
    scaled: bool = False  # its caps were scaled by --scale-regimes (a preset)

    @property
    def name(self) -> str:
        return self.given.strip()

    @property
    def two_phase(self) -> bool:
        """Rebalanced regimes run two-phase; the baseline (no rebalancing) runs phase 1 alone."""
        return not self.spec.is_identity

    @property
    def kind(self) -> str:
        """baseline, ros, rus, ros+rus or other (sqrt, balanced:N): what the study's claims compare."""
        if self.spec.is_identity:
            return "baseline"
        if self.spec.sqrt or self.spec.balanced is not None:
            return "other"
        return "ros+rus" if self.spec.ros_cap and self.spec.rus_cap else ("ros" if self.spec.ros_cap else "rus")

    @property
    def slug(self) -> str:
        """The regime's folder name under STUDY/runs/."""
        return re.sub(r"[^a-z0-9.]+", "-", self.name.lower()).strip("-") or "regime"

    @property
    def identity(self) -> str:
        """What the regime trains on: its spec, and its ROS bands when it oversamples."""
        return self.spec.text + (f"|{self.spec.ros_ratios_text}" if self.spec.ros_cap else "")

    def as_dict(self) -> dict:
        return {"given": self.given, "spec": self.spec.text, "ros_ratios": self.spec.ros_ratios_text,
                "scaled": self.scaled, "two_phase": self.two_phase, "dir": self.slug}


@dataclass(frozen=True)
class StudyRun:
    regime: Regime
    loss: str  # the loss SPEC's canonical text
    seed: int
    root: Path
    label: str  # the model's name in the tables: the regime, plus the loss when it is not the study's

    def __str__(self) -> str:
        return f"{self.label} seed {self.seed}"

    @property
    def marker(self) -> dict:
        return {"regime": self.regime.given, "loss": self.loss, "seed": self.seed}

    def finished(self) -> bool:
        path = self.root / RUN_MARKER
        try:
            return json.loads(path.read_text(encoding="utf-8")) == self.marker
        except (OSError, ValueError):
            return False


@dataclass(frozen=True)
class StudyConfig:
    """train: the study's train options; its sampling, seed, loss and two_phase are set per run.
    losses: each --loss SPEC (a text is parsed on top of train.loss). scale: the factor --scale-regimes applied to
    the presets (None: as given); train_images: what it came from."""

    out: Path
    train: TrainConfig
    regimes: tuple[Regime, ...]
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    losses: tuple[LossSpec, ...] = (DEFAULT_LOSS,)
    methods: tuple[str, ...] = PHASE2_METHODS
    scale: float | None = None
    train_images: int | None = None
    frames: str = "all"  # "first": table_focal.md adds first-frame scores (no run depends on it, so a rerun may change it)

    def __post_init__(self) -> None:
        if not self.regimes:
            raise UserError("--regime: give at least one regime")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise UserError(f"--seeds {','.join(map(str, self.seeds))}: give distinct whole numbers >= 0")
        losses = tuple(parse_loss_spec(loss, self.train.loss) if isinstance(loss, str) else loss
                       for loss in self.losses)
        object.__setattr__(self, "losses", losses)
        if not losses:
            raise UserError("--loss: give at least one loss")
        for i, loss in enumerate(losses):
            for other in losses[:i]:
                if other.config == loss.config or other.slug == loss.slug:
                    raise UserError(f"--loss {other.text} and --loss {loss.text} are the same loss or share the "
                                    f"folder name {loss.slug}; give each once")
        for i, regime in enumerate(self.regimes):
            for other in self.regimes[:i]:
                if other.slug == regime.slug or other.identity == regime.identity:
                    raise UserError(f"--regime {other.given} and --regime {regime.given} are the same regime "
                                    f"({regime.spec.text}) or share the folder name {regime.slug}; give each once")

    def label(self, regime: Regime, loss: str) -> str:
        return regime.name if loss == DEFAULT_LOSS else f"{regime.name}+{loss}"

    @property
    def loss_texts(self) -> tuple[str, ...]:
        return tuple(loss.text for loss in self.losses)

    def models(self) -> list[tuple[str, Regime, str]]:
        """(label, regime, loss SPEC text) per model, losses outer, regimes in the order given."""
        return [(self.label(regime, loss.text), regime, loss.text) for loss in self.losses for regime in self.regimes]

    def runs(self) -> list[StudyRun]:
        """Every run, seed by seed: after the first len(models) runs the study is complete at one seed, and the
        time estimate has seen every regime."""
        slugs = {loss.text: loss.slug for loss in self.losses}
        return [StudyRun(regime, loss, seed, self.out / "runs" / regime.slug / slugs[loss] / f"seed-{seed}", label)
                for seed in self.seeds for label, regime, loss in self.models()]

    def run_config(self, run: StudyRun) -> TrainConfig:
        loss = next(spec.config for spec in self.losses if spec.text == run.loss)
        return dataclasses.replace(self.train, sampling=run.regime.spec, seed=run.seed,
                                   two_phase=run.regime.two_phase, loss=loss)

    # --- study.json ---------------------------------------------------------------------------------

    def as_dict(self, shards_fingerprint: str) -> dict:
        return {"format": STUDY_FORMAT, "shards_fingerprint": shards_fingerprint,
                "regimes": [r.as_dict() for r in self.regimes], "seeds": list(self.seeds),
                "losses": list(self.loss_texts), "methods": list(self.methods),
                "scale_regimes": None if self.scale is None else {"factor": self.scale,
                                                                   "train_images": self.train_images},
                "train": self.train.as_dict()}

    def added_seeds(self, saved: dict) -> tuple[int, ...] | None:
        """The seeds this config adds to a saved study's (() when the same), or None when it drops one of them:
        a study may grow by seeds, since each seed's runs do not depend on the others'."""
        theirs = saved.get("seeds")
        if not isinstance(theirs, list) or not set(theirs) <= set(self.seeds):
            return None
        return tuple(seed for seed in self.seeds if seed not in theirs)

    def added_losses(self, saved: dict) -> tuple[str, ...] | None:
        """The loss SPECs this config adds to a saved study's (() when the same), or None when it drops one.

        Losses follow the seeds' rule, for the same reason: each run depends only on its own (regime, loss, seed),
        so the finished runs stay valid and an added loss only adds columns. A loss is never dropped: study.json
        and the tables describe every run in the folder, and a study that silently lost a column (or a changed
        SPEC, which is a drop and an add) would no longer be the study that was run."""
        theirs = saved.get("losses")
        if not isinstance(theirs, list) or not set(theirs) <= set(self.loss_texts):
            return None
        return tuple(text for text in self.loss_texts if text not in theirs)

    def continuing(self, saved: dict) -> StudyConfig:
        """This config as the continuation of a saved study whose seeds and losses it holds: the saved ones in the
        saved order, then the added ones, so the tables (and their floating-point sums) do not depend on the order
        --seeds or --loss was written in."""
        added, added_losses = self.added_seeds(saved), self.added_losses(saved)
        assert added is not None and added_losses is not None, "continuing() is for a config without differences()"
        by_text = {loss.text: loss for loss in self.losses}
        return dataclasses.replace(self, seeds=(*saved["seeds"], *added),
                                   losses=tuple(by_text[text] for text in (*saved["losses"], *added_losses)))

    def differences(self, saved: dict, shards_fingerprint: str) -> list[str]:
        """What differs between a saved study.json and this config, each as 'FLAG THERE there, NOW now'."""
        mine = self.as_dict(shards_fingerprint)
        found = []
        if saved.get("shards_fingerprint") != shards_fingerprint:
            found.append(f"SHARDS {self.train.shards} holds other shards than the study trained on "
                         "(the fingerprint differs)")
        shown = {"regimes": ("--regime", lambda rs: ",".join(f"{r['given']}={r['spec']}" for r in rs)),
                 "seeds": ("--seeds", lambda v: ",".join(map(str, v))),
                 "losses": ("--loss", lambda v: " --loss ".join(v)), "methods": ("--methods", lambda v: ",".join(v)),
                 "scale_regimes": ("--scale-regimes", lambda v: "off" if v is None else f"x{v['factor']:.6g}")}
        for key, (flag, show) in shown.items():
            if key == "seeds" and self.added_seeds(saved) is not None:
                continue  # seeds may be added to a study: its finished runs stay valid, the tables grow
            if key == "losses" and self.added_losses(saved) is not None:
                continue  # so may losses (added_losses says why)
            if saved.get(key) != mine[key]:
                removed = {"seeds": " (seeds can be added to a study, not removed)",
                           "losses": " (losses can be added to a study, not removed or changed)"}.get(key, "")
                found.append(f"{flag} {show(saved.get(key)) if key in saved else '(none)'} there, "
                             f"{show(mine[key])} now{removed}")
        try:
            theirs = TrainConfig.from_json(json.dumps(saved["train"]))
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(f"{self.out / 'study.json'}: not a camtrap-fast study file ({error}); "
                            "choose another --out") from None
        for name, old, new in theirs.differences(self.train):
            if name not in RERUN_CHANGES:
                found.append(f"{FLAG_OF_FIELD.get(name, name)} {old} there, {new} now")
        return found


def resolve_regimes(texts: tuple[str, ...], ros_ratios: str | None, scale: float | None) -> tuple[Regime, ...]:
    """Each --regime SPEC parsed (UserErrors name it). With `scale`, the presets' caps are scaled (a SPEC written as
    terms keeps the caps written), and so are the paper's ROS bands of every regime unless --ros-ratios gave some."""
    from camtrap_fast.sampling.scale import scale_ros_ratios, scale_spec

    regimes = []
    for text in texts:
        try:
            spec = parse_sampling(text, ros_ratios)
        except UserError as error:
            raise UserError(str(error).replace("--sampling", "--regime", 1)) from None
        preset = text.strip().lower() in PRESETS
        if scale is not None:
            if preset:
                spec = scale_spec(spec, scale, scale_ratios=ros_ratios is None)
            elif ros_ratios is None:
                spec = dataclasses.replace(spec, ros_ratios=scale_ros_ratios(spec.ros_ratios, scale))
        regimes.append(Regime(text, spec, scaled=scale is not None and preset and not spec.is_identity))
    return tuple(regimes)

