"""The command-line flags of a training run, in one table: flag -> TrainConfig field, type and help.

`add_train_arguments` puts them on a parser with default None (so "not given" is visible) and a help text
that shows the real default, read from the dataclasses; `config_from_args` builds the TrainConfig from
what was given and turns a field's validation error into a one-line UserError naming the flag. `train`
and `study` share the table, so both accept every training option with the same meaning.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from camtrap_fast.errors import ConfigError, UserError
from camtrap_fast.sampling.spec import PAPER_ROS_RATIOS, format_ros_ratios, parse_sampling
from camtrap_fast.train.config import AUTO_LR, TrainConfig

SWITCH = "switch"  # a flag without a value (store_true)


@dataclass(frozen=True)
class Flag:
    name: str  # "--batch-size"
    field: str  # dotted TrainConfig field: "phase1.batch_size"; "sampling.spec" and friends are parsed together
    type: Callable | str
    help: str
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")


def _focal_alpha(text: str) -> float | str | tuple[float, ...]:
    if text == "inverse-frequency":
        return text
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("a number, one number per class joined by commas, or inverse-frequency") \
            from None
    return values[0] if len(values) == 1 else values


def _lr(text: str) -> float | str:
    if text == AUTO_LR:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number > 0, or {AUTO_LR}") from None


FLAGS = (
    Flag("--two-phase", "two_phase", SWITCH, "add phase 2: fit the final layer on cached features "
         "(by --phase2; the study's retraining on the original data by default)"),
    Flag("--sampling", "sampling.spec", str, "phase-1 rebalancing, e.g. paper-ros-rus-15k or ros:50,rus:150 "
         "(see `camtrap-fast plan`)", "SPEC"),
    Flag("--ros-ratios", "sampling.ros_ratios", str, "ROS ratio per size band, BOUND:RATIO for n < BOUND",
         "SCHEDULE"),
    Flag("--arch", "model.arch", str, "any torchvision classification model"),
    Flag("--weights", "model.weights", Path, "start from this state-dict file (random init if omitted)", "FILE"),
    Flag("--loss", "loss.name", str, "ce, focal (softmax), weighted-ce or sigmoid-focal (TF Addons' "
         "SigmoidFocalCrossEntropy: one-vs-all, alpha on positives and 1 - alpha on negatives)"),
    Flag("--focal-gamma", "loss.focal_gamma", float, "focal and sigmoid-focal exponent"),
    Flag("--focal-alpha", "loss.focal_alpha", _focal_alpha, "focal: a class factor > 0, one per class (A1,A2,...) "
         "or inverse-frequency; sigmoid-focal: alpha in (0, 1] (TF Addons' default 0.25) or one per class "
         "(none if omitted)", "ALPHA"),
    Flag("--class-weights", "loss.class_weights", str, "weighted-ce: inverse-frequency or effective-number"),
    Flag("--epochs", "phase1.epochs", int, "maximum phase-1 epochs"),
    Flag("--patience", "phase1.patience", int, "phase-1 early-stopping patience, in epochs without a better "
         "validation score (--monitor)"),
    Flag("--lr", "phase1.lr", _lr, "phase-1 Adam learning rate, or auto: run `lr-find` on the training plan "
         "first and take its suggestion (recorded in RUN/lr_find/)", "LR"),
    Flag("--freeze-epochs", "phase1.freeze_epochs", int, "train only the final layer (backbone frozen, BatchNorm in "
         "eval mode) for the first N of --epochs, then the whole network (fast.ai's fine_tune)", "N"),
    Flag("--monitor", "phase1.monitor", str, "what phase-1 early stopping and the kept epoch watch: macro-f1 "
         "(validation macro-F1) or loss (validation loss)"),
    Flag("--batch-size", "phase1.batch_size", int, "phase-1 batch size (also the eval batch size)"),
    Flag("--head-epochs", "head.epochs", int, "maximum phase-2 epochs"),
    Flag("--head-lr", "head.lr", float, "phase-2 Adam learning rate"),
    Flag("--head-batch-size", "head.batch_size", int, "phase-2 batch size"),
    Flag("--head-patience", "head.patience", int, "phase-2 early-stopping patience"),
    Flag("--phase2", "head.method", str, "phase-2 method: retrain (the study's), crt, tau-norm, lws, ncm, "
         "logit-adjust or balanced-softmax (see `camtrap-fast heads`)", "METHOD"),
    Flag("--backend", "loader.backend", str, "auto (DALI on CUDA when installed, else PIL), dali or pil"),
    Flag("--image-size", "loader.image_size", int, "crop size in pixels"),
    Flag("--crop-scale-min", "loader.crop_scale_min", float, "random-resized-crop minimum area"),
    Flag("--eval-crop", "loader.eval_crop", str, "how eval, the reports and predict see a frame: center (the "
         "usual centre crop) or full (the whole frame squeezed to the square, as SpeciesNet and MEWC do)"),
    Flag("--workers", "loader.workers", int, "loader worker processes (PIL; 0: decode in the main process) or "
         "decode threads (DALI); auto: one per 8 CPUs when training on the CPU, every CPU (at most 16) on a GPU"),
    Flag("--threads", "threads", int, "torch CPU threads for training; auto: one per CPU"),
    Flag("--skip-corrupt", "loader.skip_corrupt", SWITCH, "skip and count samples that cannot be read or decoded "
         "instead of stopping"),
    Flag("--device", "device", str, "auto, cpu, cuda or cuda:N"),
    Flag("--seed", "seed", int, "random seed: weights, epoch orders, crops"),
    Flag("--compare", "compare", Path, "a baseline run to compare per-species F1 with", "RUN"),
    Flag("--stream-from", "stream_from", str, "read the train shards sequentially from "
         "URL_PREFIX/train/shard-*.tar (http(s)://, s3://, pipe:); SHARDS still supplies manifest and index",
         "URL_PREFIX"),
)
FLAG_OF_FIELD = {flag.field: flag.name for flag in FLAGS}
AUTOMATIC = ("loader.workers", "threads")  # fields whose None means "chosen for the machine" (train.parallelism)


def default_of(field: str):
    """The default value of a dotted TrainConfig field, from the dataclasses themselves."""
    if field == "sampling.spec":
        return "none"
    if field == "sampling.ros_ratios":
        return format_ros_ratios(PAPER_ROS_RATIOS)
    section, _, name = field.rpartition(".")
    if not section:
        default = next(f for f in dataclasses.fields(TrainConfig) if f.name == name).default
        return None if default is dataclasses.MISSING else default
    owner = next(f for f in dataclasses.fields(TrainConfig) if f.name == section)
    return getattr(owner.default_factory(), name)


def add_train_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    for flag in FLAGS:
        if flag.name in skip:
            continue
        if flag.type == SWITCH:
            parser.add_argument(flag.name, action="store_const", const=True, default=None, help=flag.help)
            continue
        default = default_of(flag.field)
        shown = ("auto" if flag.field in AUTOMATIC else "none") if default is None else str(default)
        parser.add_argument(flag.name, type=flag.type, default=None, metavar=flag.metavar,
                            help=f"{flag.help} (default {shown})")


def config_from_args(shards: Path, args: argparse.Namespace | dict) -> TrainConfig:
    """The TrainConfig for `shards` with every flag that was given (not None) applied; UserError naming the flag."""
    given = {flag: value for flag in FLAGS
             if (value := (args.get(flag.dest) if isinstance(args, dict) else getattr(args, flag.dest, None)))
             is not None}
    by_field = {flag.field: (flag, value) for flag, value in given.items()}
    defaults = TrainConfig(shards=Path(shards).expanduser().absolute())  # eval/predict may run elsewhere
    values: dict[str, object] = {}
    spec_text = by_field.pop("sampling.spec", (None, "none"))[1]
    ratios = by_field.pop("sampling.ros_ratios", (None, None))[1]
    values["sampling"] = parse_sampling(spec_text, ratios)  # UserErrors name --sampling / --ros-ratios
    for field, (flag, value) in list(by_field.items()):
        if isinstance(value, Path):
            value = value.expanduser().absolute()
            by_field[field] = (flag, value)
    sections: dict[str, dict] = {}
    for field, (flag, value) in by_field.items():
        section, _, name = field.rpartition(".")
        if section:
            sections.setdefault(section, {})[name] = value
        else:
            values[name] = value
    for section, changes in sections.items():
        try:
            values[section] = dataclasses.replace(getattr(defaults, section), **changes)
        except ConfigError as error:
            raise user_error(section, error, by_field) from None
    try:
        config = dataclasses.replace(defaults, **values)
    except ConfigError as error:
        raise user_error("", error, by_field) from None
    _check_paths(config)
    return config


def user_error(section: str, error: ConfigError, given: dict | None = None) -> UserError:
    """A ConfigError of `section`'s field as a one-line UserError naming the flag (or the field, when no flag)."""
    field = f"{section}.{error.field}" if section else error.field
    name = FLAG_OF_FIELD.get(field, field)
    value = error.value
    if given and field in given:
        value = given[field][1]
    if isinstance(value, tuple):  # a per-class list, as it was typed
        value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return UserError(f"{name} {value}: {error.problem}")


def _check_paths(config: TrainConfig) -> None:
    if config.model.weights is not None and not config.model.weights.is_file():
        raise UserError(f"{config.model.weights}: --weights file not found")
    if config.compare is not None and not (config.compare / "config.json").is_file():
        raise UserError(f"{config.compare}: --compare needs a finished camtrap-fast training run directory")
