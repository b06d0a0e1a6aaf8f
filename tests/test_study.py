"""`study`'s parts on their own, without training: regime scaling, the study config and its rerun check, the
t interval and verdicts, table.csv and the claims on made-up scores."""

from __future__ import annotations

import argparse
import csv
import io
import math
import pytest

from camtrap_fast.errors import UserError
from camtrap_fast.sampling.scale import scale_factor, scale_spec
from camtrap_fast.sampling.spec import parse_sampling
from camtrap_fast.study.collect import Model, StudyScores
from camtrap_fast.study.config import Regime, StudyConfig, resolve_regimes
from camtrap_fast.study.stats import paired, sample_std, t_975, verdict
from camtrap_fast.train.config import Phase1Config, TrainConfig

DEMO_TRAIN_IMAGES = 1300  # synth --scale 0.01: the demo's training split


# --- regimes ------------------------------------------------------------------------------------------------------

def test_scaled_presets_match_the_demo_and_keep_the_study_proportions():
    from camtrap_fast.cli.demo import scaled_sampling

    factor = scale_factor(DEMO_TRAIN_IMAGES)
    assert scaled_sampling(DEMO_TRAIN_IMAGES) == ("ros:42,rus:126", "1:10,4:8,8:6,inf:4")
    specs = {r.given: r for r in resolve_regimes(("none", "paper-ros", "paper-rus", "paper-ros-rus-15k",
                                                  "paper-ros-rus-5k"), None, factor)}
    assert [specs[name].spec.text for name in specs] == ["none", "ros:42", "rus:126", "ros:42,rus:126",
                                                         "ros:42,rus:42"]
    assert specs["paper-ros"].spec.ros_ratios_text == "1:10,4:8,8:6,inf:4"
    assert specs["paper-ros"].scaled and not specs["none"].scaled
    # at the study's own size nothing changes
    assert scale_spec(parse_sampling("paper-ros-rus-15k"), 1.0) == parse_sampling("paper-ros-rus-15k")


def test_written_caps_are_kept_and_given_ros_ratios_are_not_scaled():
    factor = scale_factor(DEMO_TRAIN_IMAGES)
    (written,) = resolve_regimes(("ros:30,rus:60",), None, factor)
    assert written.spec.text == "ros:30,rus:60" and not written.scaled
    assert written.spec.ros_ratios_text == "1:10,4:8,8:6,inf:4"  # the paper's bands, scaled
    (preset,) = resolve_regimes(("paper-ros",), "5:3,inf:2", factor)
    assert preset.spec.text == "ros:42" and preset.spec.ros_ratios_text == "5:3,inf:2"
    (unscaled,) = resolve_regimes(("paper-ros",), None, None)
    assert unscaled.spec.text == "ros:5000"


def test_a_bad_regime_names_the_flag():
    with pytest.raises(UserError, match="--regime 'ros:lots'"):
        resolve_regimes(("ros:lots",), None, None)


def _config(tmp_path, regimes=("none", "ros:20"), **changes) -> StudyConfig:
    values = {"seeds": (0, 1), "losses": ("ce",), "methods": ("retrain", "ncm")}
    values.update(changes)
    return StudyConfig(tmp_path / "study", TrainConfig(shards=tmp_path / "shards"),
                       resolve_regimes(tuple(regimes), None, None), **values)


def test_study_config_refuses_a_regime_twice_and_bad_seeds_or_losses(tmp_path):
    with pytest.raises(UserError, match="same regime"):
        _config(tmp_path, regimes=("paper-ros", "ros:5000"))
    with pytest.raises(UserError, match="--seeds 0,0"):
        _config(tmp_path, seeds=(0, 0))
    with pytest.raises(UserError, match="unknown loss 'hinge'"):
        _config(tmp_path, losses=("ce", "hinge"))


def test_runs_go_seed_by_seed_and_set_the_four_per_run_fields(tmp_path):
    config = _config(tmp_path, losses=("ce", "focal"))
    runs = config.runs()
    assert [str(r) for r in runs] == ["none seed 0", "ros:20 seed 0", "none+focal seed 0", "ros:20+focal seed 0",
                                      "none seed 1", "ros:20 seed 1", "none+focal seed 1", "ros:20+focal seed 1"]
    assert runs[3].root == tmp_path / "study" / "runs" / "ros-20" / "focal" / "seed-0"
    baseline, rebalanced = config.run_config(runs[4]), config.run_config(runs[3])
    assert (baseline.two_phase, baseline.seed, baseline.loss.name, baseline.sampling.text) == (False, 1, "ce", "none")
    assert (rebalanced.two_phase, rebalanced.seed, rebalanced.loss.name, rebalanced.sampling.text) == \
        (True, 0, "focal", "ros:20")


def test_differences_name_each_flag_and_allow_device_and_workers(tmp_path):
    import dataclasses

    config = _config(tmp_path)
    saved = config.as_dict("abc")
    assert config.differences(saved, "abc") == []
    moved = dataclasses.replace(config, train=dataclasses.replace(config.train, device="cpu"))
    assert moved.differences(saved, "abc") == []
    other = dataclasses.replace(config, seeds=(1,),
                                train=dataclasses.replace(config.train, phase1=Phase1Config(epochs=2)))
    found = other.differences(saved, "abc")
    assert found == ["--seeds 0,1 there, 1 now (seeds can be added to a study, not removed)",
                     "--epochs 30 there, 2 now"]
    # seeds may be added: not a difference, and the added ones are named
    grown = dataclasses.replace(config, seeds=(0, 3, 1))
    assert grown.differences(saved, "abc") == [] and grown.added_seeds(saved) == (3,)
    assert config.added_seeds(saved) == () and other.added_seeds(saved) is None
    assert grown.continuing(saved).seeds == (0, 1, 3)  # the study's seeds in its order, then the added ones
    assert any("other shards" in d for d in config.differences(saved, "another"))


def test_study_options_come_from_the_train_table(tmp_path):
    from camtrap_fast.cli import build_parser
    from camtrap_fast.study.options import study_config_from_args

    args = build_parser().parse_args(["study", str(tmp_path), "--out", str(tmp_path / "s"), "--epochs", "3",
                                      "--regime", "none", "--regime", "paper-rus", "--seeds", "4,5",
                                      "--losses", "ce,focal", "--focal-gamma", "1.5", "--methods", "ncm,retrain"])
    config = study_config_from_args(args)
    assert config.train.phase1.epochs == 3 and config.train.loss.focal_gamma == 1.5
    assert config.seeds == (4, 5) and config.loss_texts == ("ce", "focal") and config.methods == ("ncm", "retrain")
    assert [r.spec.text for r in config.regimes] == ["none", "rus:15000"]
    with pytest.raises(SystemExit):  # the study sets --sampling, --seed, --loss, --two-phase itself
        build_parser().parse_args(["study", str(tmp_path), "--out", "s", "--sampling", "none"])
    with pytest.raises(UserError, match="--seeds 0,x"):
        study_config_from_args(argparse.Namespace(**{**vars(args), "seeds": "0,x"}))


# --- intervals and verdicts ---------------------------------------------------------------------------------------

def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 9, 29, 30, 31, 45, 100, 10_000):
        assert t_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-6)


def test_paired_interval_and_verdicts():
    spread = paired([1.0, 2.0, 3.0])  # mean 2, std 1, half-width 4.302653 / sqrt(3)
    assert spread.mean == 2.0 and sample_std([1.0, 2.0, 3.0]) == 1.0
    assert spread.low == pytest.approx(2 - 4.302653 / math.sqrt(3)) and spread.high == pytest.approx(2 + 2.484138)
    assert verdict(spread) == "inconclusive at 3 seeds"
    assert verdict(paired([0.10, 0.11, 0.09])) == "holds"
    assert verdict(paired([-0.10, -0.11, -0.09])) == "does not hold"
    assert verdict(paired([0.05])) == "inconclusive at 1 seed"
    # ties (a metric counted in test images): no interval of no width, no verdict
    # equal gains with rounding noise (each seed 10 of 200 images better): no spread, no interval, no verdict
    noisy = paired([0.55 - 0.5, 0.3 - 0.25, 0.8 - 0.75])
    assert sample_std(noisy.differences) > 0 and noisy.low is None and verdict(noisy) == "inconclusive at 3 seeds"
    tied = paired([0.015, 0.015])
    assert (tied.low, tied.high, verdict(tied)) == (None, None, "inconclusive at 2 seeds")
    # a non-inferiority claim: above -0.02
    assert verdict(paired([-0.010, -0.011, -0.009]), threshold=-0.02) == "holds"
    assert verdict(paired([-0.010, -0.011, -0.009])) == "does not hold"


# --- tables and claims on made-up scores --------------------------------------------------------------------------

CLASSES = ("common", "middle", "rare")


def _metrics(accuracy: float, f1: float, per_class_f1=(0.9, 0.5, 0.0)) -> dict:
    return {"accuracy": accuracy, "macro_precision": f1 + 0.01, "macro_recall": f1 - 0.01, "macro_f1": f1,
            "rarest_accuracy": {"2": 0.2, "5": None, "10": None}, "commonest_accuracy": {"2": 0.8, "5": None,
                                                                                          "10": None},
            "split": "test",
            "per_class": {c: {"precision": v, "recall": v, "f1": v, "count_train": n, "count_test": 2}
                          for c, v, n in zip(CLASSES, per_class_f1, (100, 10, 1))}}


def _scores() -> StudyScores:
    regimes = {name: Regime(name, parse_sampling(name)) for name in ("none", "ros:50", "rus:50", "ros:50,rus:50")}
    models = tuple(Model(name, regime, "ce") for name, regime in regimes.items())
    # per model and phase: (accuracy, macro F1) at seeds 0, 1, 2
    numbers = {("none", "1"): [(0.80, 0.40), (0.82, 0.42), (0.81, 0.41)],
               ("ros:50", "1"): [(0.70, 0.45), (0.71, 0.47), (0.69, 0.44)],
               ("ros:50", "2"): [(0.79, 0.44), (0.81, 0.46), (0.80, 0.45)],
               ("rus:50", "1"): [(0.60, 0.43), (0.65, 0.40), (0.70, 0.47)],
               ("rus:50", "2"): [(0.78, 0.42), (0.83, 0.47), (0.79, 0.40)],
               ("ros:50,rus:50", "1"): [(0.75, 0.50), (0.74, 0.51), (0.76, 0.52)],
               ("ros:50,rus:50", "2"): [(0.80, 0.50), (0.81, 0.52), (0.81, 0.53)]}
    metrics = {key: tuple(_metrics(a, f) for a, f in values) for key, values in numbers.items()}
    rus = [(0.9, 0.6, 0.2), (0.9, 0.5, 0.1), (0.8, 0.6, 0.0)]  # per-class F1 of rus:50 phase 2, per seed
    metrics[("rus:50", "2")] = tuple(_metrics(a, f, c) for (a, f), c in zip(numbers[("rus:50", "2")], rus))
    for model in models:
        metrics[(model.label, "ncm")] = metrics[(model.label, model.final_phase)]
    return StudyScores(models, ("ncm",), (0, 1, 2), CLASSES, (100, 10, 1), metrics,
                       {key: None for key in metrics})


def test_table_csv_rows_are_mean_and_sample_std():
    from camtrap_fast.study.tables import table_csv

    rows = list(csv.DictReader(io.StringIO(table_csv(_scores()))))
    assert list(rows[0]) == ["regime", "phase", "metric", "mean", "std", "seeds"]
    row = next(r for r in rows if (r["regime"], r["phase"], r["metric"]) == ("rus:50", "1", "accuracy"))
    assert (row["mean"], row["std"], row["seeds"]) == ("0.650000", "0.050000", "3")
    # undefined at every seed (fewer than 5 classes have test images): no row
    assert not [r for r in rows if r["metric"] == "rarest_5"]
    assert [(r["regime"], r["phase"]) for r in rows if r["metric"] == "accuracy"] == [
        ("none", "1"), ("none", "ncm"), ("ros:50", "1"), ("ros:50", "2"), ("ros:50", "ncm"), ("rus:50", "1"),
        ("rus:50", "2"), ("rus:50", "ncm"), ("ros:50,rus:50", "1"), ("ros:50,rus:50", "2"), ("ros:50,rus:50", "ncm")]


def test_claims_pair_seeds_and_end_in_a_verdict():
    from camtrap_fast.study.claims import check_claims, claims_md

    sections = check_claims(_scores())
    text = claims_md(_scores(), sections, "claims")
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert lines and all(line.endswith(("holds", "does not hold", "inconclusive at 3 seeds")) for line in lines)
    by_subject = {(s.statement[:20], c.subject): c for s in sections for c in s.claims}
    recovered = by_subject[("Phase 2 recovers the", "ros:50")]
    assert recovered.result.differences == pytest.approx((0.09, 0.10, 0.11)) and recovered.verdict == "holds"
    combined = [c for s in sections for c in s.claims if c.subject == "ros:50,rus:50 vs ros:50"]
    assert combined[0].result.mean == pytest.approx((0.06 + 0.06 + 0.08) / 3)
    # per-class F1 over classes with non-zero F1 in either model: "rare" is 0 in both at seed 2 and left out there
    rus = next(c for s in sections for c in s.claims if c.metric.startswith("per-class F1"))
    assert rus.result.differences == pytest.approx(((0.0 + 0.1 + 0.2) / 3, (0.0 + 0.0 + 0.1) / 3, (-0.1 + 0.1) / 2))
    best = next(s for s in sections if s.statement.startswith("The best"))
    assert best.claims[0].subject.startswith("ros:50,rus:50 (the best here")
    assert "picked on these same scores, so optimistic" in best.claims[0].subject  # no validation scores here


def test_the_best_two_phase_model_is_picked_on_validation_where_every_run_has_a_score():
    """The claim compares the best model's test macro F1 with the baseline's: picked by the runs' validation
    macro F1 (phase 2's kept epoch), the test scores did not choose it. One run without one: picked on test, and
    the subject says it is optimistic."""
    from camtrap_fast.study.claims import check_claims

    scores = _scores()
    validation = {"ros:50": (0.50, 0.52, 0.51), "rus:50": (0.40, 0.41, 0.42), "ros:50,rus:50": (0.45, 0.44, 0.46)}
    for label, values in validation.items():  # ros:50 is best on val, ros:50,rus:50 on test
        runs = scores.metrics[(label, "2")]
        scores.metrics[(label, "2")] = tuple({**m, "val_macro_f1": v} for m, v in zip(runs, values))
    best = next(s for s in check_claims(scores) if s.statement.startswith("The best")).claims[0]
    assert best.subject.startswith("ros:50 (the best here by mean phase-2 validation macro F1, scored on test")
    assert best.result.differences == pytest.approx((0.44 - 0.40, 0.46 - 0.42, 0.45 - 0.41))
    first = scores.metrics[("rus:50", "2")]
    scores.metrics[("rus:50", "2")] = ({**first[0], "val_macro_f1": float("nan")},) + first[1:]
    best = next(s for s in check_claims(scores) if s.statement.startswith("The best")).claims[0]
    assert best.subject.startswith("ros:50,rus:50 (the best here by mean phase-2 macro F1 on test; picked on these")


def test_claims_that_need_a_missing_regime_say_so():
    from camtrap_fast.study.claims import check_claims

    scores = _scores()
    only = StudyScores(scores.models[1:2], (), scores.seeds, CLASSES, scores.train_counts, scores.metrics,
                       scores.epoch_counts)
    unchecked = {s.statement[:20]: s.unchecked for s in check_claims(only) if not s.claims}
    assert "no baseline" in unchecked["Two-phase training i"]
    assert "ROS&RUS" in unchecked["Combining ROS and RU"]



def test_building_the_command_line_with_study_imports_no_torch():
    import subprocess
    import sys

    code = "import sys; from camtrap_fast.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
