"""`study --loss SPEC`: the loss grid's parsing, a rerun adding (not removing) losses, and table_focal.md."""

from __future__ import annotations

import dataclasses

import pytest

from camtrap_fast.errors import UserError
from camtrap_fast.loss_config import LossConfig
from camtrap_fast.sampling.spec import parse_sampling
from camtrap_fast.study.collect import Model, StudyScores
from camtrap_fast.study.config import Regime, StudyConfig, resolve_regimes
from camtrap_fast.study.focal_table import table_focal_md
from camtrap_fast.study.loss_spec import parse_loss_spec
from camtrap_fast.train.config import TrainConfig


def test_loss_specs_parse_on_top_of_the_train_options():
    base = LossConfig(focal_gamma=1.5)
    spec = parse_loss_spec(" sigmoid-focal:alpha=0.25, gamma=1 ", base)
    assert spec.text == "sigmoid-focal:alpha=0.25,gamma=1" and spec.slug == "sigmoid-focal-alpha0.25-gamma1"
    assert spec.config == LossConfig("sigmoid-focal", focal_gamma=1.0, focal_alpha=0.25)
    assert parse_loss_spec("focal", base).config == LossConfig("focal", focal_gamma=1.5)  # --focal-gamma
    assert parse_loss_spec("focal:gamma=2.0", base).text == "focal:gamma=2"
    assert parse_loss_spec("sigmoid-focal:alpha=0.1/0.9", base).config.focal_alpha == (0.1, 0.9)
    assert parse_loss_spec("weighted-ce:class-weights=effective-number,beta=0.99", base).config.beta == 0.99
    assert parse_loss_spec("ce", base).slug == "ce"  # older studies' run folders


@pytest.mark.parametrize("text, message", [
    ("hinge", "unknown loss 'hinge'"), ("focal:gama=2", "not KEY=VALUE"), ("focal:gamma=x", "gamma=x is not a number"),
    ("sigmoid-focal:alpha=2", "--loss sigmoid-focal:alpha=2: alpha 2.0: must be in (0, 1]"),
    ("focal:gamma=1,gamma=2", "gamma given twice")])
def test_bad_loss_specs_name_the_spec(text, message):
    with pytest.raises(UserError) as error:
        parse_loss_spec(text, LossConfig())
    assert message in str(error.value)


def _config(tmp_path, losses, seeds=(0, 1)) -> StudyConfig:
    return StudyConfig(tmp_path / "study", TrainConfig(shards=tmp_path / "shards"),
                       resolve_regimes(("none",), None, None), seeds, losses, ("retrain",))


def test_runs_get_each_loss_and_its_folder(tmp_path):
    config = _config(tmp_path, ("ce", "sigmoid-focal:alpha=0.25,gamma=1"))
    runs = config.runs()
    assert [str(r) for r in runs][:2] == ["none seed 0", "none+sigmoid-focal:alpha=0.25,gamma=1 seed 0"]
    assert runs[1].root == tmp_path / "study" / "runs" / "none" / "sigmoid-focal-alpha0.25-gamma1" / "seed-0"
    assert config.run_config(runs[1]).loss == LossConfig("sigmoid-focal", focal_gamma=1.0, focal_alpha=0.25)
    with pytest.raises(UserError, match="same loss"):
        _config(tmp_path, ("focal", "focal:gamma=2"))  # gamma 2 is the default: one loss twice


def test_a_rerun_may_add_losses_but_not_remove_or_change_them(tmp_path):
    config = _config(tmp_path, ("ce", "focal:gamma=2"))
    saved = config.as_dict("abc")
    grown = _config(tmp_path, ("sigmoid-focal:alpha=0.5,gamma=1", "ce", "focal:gamma=2"))
    assert grown.differences(saved, "abc") == []
    assert grown.added_losses(saved) == ("sigmoid-focal:alpha=0.5,gamma=1",)
    assert grown.continuing(saved).loss_texts == ("ce", "focal:gamma=2", "sigmoid-focal:alpha=0.5,gamma=1")
    changed = _config(tmp_path, ("ce", "focal:gamma=1"))
    assert changed.differences(saved, "abc") == [
        "--loss ce --loss focal:gamma=2 there, ce --loss focal:gamma=1 now (losses can be added to a study, not "
        "removed or changed)"]
    # a study made with --losses before loss SPECs existed: its list of names reads as the same SPECs
    older = {**saved, "losses": ["ce", "focal"]}
    assert _config(tmp_path, ("ce", "focal")).differences(older, "abc") == []


def _metrics(accuracy, rarest, commonest):
    return {"accuracy": accuracy, "macro_precision": 0.3, "macro_recall": 0.3, "macro_f1": accuracy / 2,
            "rarest_accuracy": {"2": rarest, "5": rarest, "10": None},
            "commonest_accuracy": {"2": commonest, "5": commonest, "10": None}, "split": "test",
            "per_class": {c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "count_train": 10 - i,
                              "count_test": 0 if c == "c7" else 1} for i, c in enumerate(f"c{j}" for j in range(8))}}


def test_table_focal_has_the_study_rows_and_a_column_per_loss():
    regime = Regime("none", parse_sampling("none"))
    models = (Model("none", regime, "ce"), Model("none+sigmoid-focal:alpha=0.25,gamma=1", regime,
                                                 "sigmoid-focal:alpha=0.25,gamma=1"))
    metrics = {("none", "1"): (_metrics(0.5, 0.0, 0.9), _metrics(0.7, 0.2, 0.7)),
               ("none+sigmoid-focal:alpha=0.25,gamma=1", "1"): (_metrics(0.4, 0.5, 0.6), _metrics(0.4, 0.5, 0.6))}
    classes = tuple(f"c{j}" for j in range(8))
    scores = StudyScores(models, (), (0, 1), classes, tuple(range(10, 2, -1)), metrics, {k: None for k in metrics})
    text = table_focal_md(scores, "t")
    lines = text.splitlines()
    assert "| Classes | ce | sigmoid-focal:alpha=0.25,gamma=1 |" in lines
    # 7 classes have test images: the 2 rarest are classes 6-7, the 5 rarest 3-7
    assert "| Classes 6–7 (2 rarest) | 0.100 ± 0.141 | 0.500 ± 0.000 |" in lines
    assert "| Classes 3–7 (5 rarest) | 0.100 ± 0.141 | 0.500 ± 0.000 |" in lines
    assert "| Classes 1–7 (10 rarest) | – | – |" in lines  # undefined: fewer than 10 ranked classes
    assert "| Classes 1–5 (5 commonest) | 0.800 ± 0.141 | 0.600 ± 0.000 |" in lines
    assert "| F1 (macro) | 0.300 ± 0.071 | 0.200 ± 0.000 |" in lines
    assert "| Total accuracy | 0.600 ± 0.141 | 0.400 ± 0.000 |" in lines
    assert [line for line in lines if line.startswith("| Classes") or line.startswith("| F1")
            or line.startswith("| Total")][1:] == [line for line in lines if line.startswith("| ") and "---" not in
                                                   line][1:]
