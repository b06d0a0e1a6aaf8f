"""compute_metrics against scikit-learn, plus rarest/commonest-class accuracy and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from camtrap_fast.metrics import compute_metrics, confusion_matrix, macro_f1, tail_accuracy


def names(n: int) -> list[str]:
    return [f"class{i}" for i in range(n)]


def assert_matches_sklearn(y_true, y_pred, num_classes: int) -> None:
    metrics = compute_metrics(y_true, y_pred, names(num_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    assert metrics.accuracy == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert metrics.macro_precision == pytest.approx(precision, abs=1e-12)
    assert metrics.macro_recall == pytest.approx(recall, abs=1e-12)
    assert metrics.macro_f1 == pytest.approx(f1, abs=1e-12)
    assert macro_f1(y_true, y_pred, num_classes) == pytest.approx(f1, abs=1e-12)
    present = np.unique(np.concatenate([y_true, y_pred]))
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=present, average=None, zero_division=0)
    np.testing.assert_allclose(metrics.precision[present], p, atol=1e-12)
    np.testing.assert_allclose(metrics.recall[present], r, atol=1e-12)
    np.testing.assert_allclose(metrics.f1[present], f, atol=1e-12)
    np.testing.assert_array_equal(metrics.support[present], support)
    absent = np.setdiff1d(np.arange(num_classes), present)
    assert np.isnan(metrics.f1[absent]).all() and (metrics.support[absent] == 0).all()
    np.testing.assert_array_equal(metrics.confusion, sk_confusion_matrix(y_true, y_pred, labels=range(num_classes)))


@pytest.mark.parametrize("seed", range(8))
def test_random_inputs_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 60))
    n = int(rng.integers(1, 3000))
    # skewed labels so some classes are absent from y_true, y_pred or both
    weights = rng.pareto(1.0, num_classes) + 1e-3
    y_true = rng.choice(num_classes, n, p=weights / weights.sum())
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.choice(num_classes, n))
    assert_matches_sklearn(y_true, y_pred, num_classes)


@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8).flatmap(lambda c: st.tuples(
    st.just(c), st.lists(st.tuples(st.integers(0, c - 1), st.integers(0, c - 1)), min_size=1, max_size=40))))
def test_small_inputs_match_sklearn(case):
    num_classes, pairs = case
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    assert_matches_sklearn(y_true, y_pred, num_classes)


@pytest.mark.parametrize(
    "y_true, y_pred",
    [
        ([0], [0]),  # one sample, right
        ([0], [1]),  # one sample, wrong: class 1 predicted but never true
        ([0, 0, 0], [1, 1, 1]),  # nothing right
        ([2, 2, 2], [2, 2, 2]),  # one class only, classes 0 and 1 absent
        ([0, 1, 2, 3], [3, 2, 1, 0]),
        ([0, 0, 1, 1], [0, 0, 0, 0]),  # class 1 never predicted: precision 0 by zero_division
    ],
)
def test_edge_cases_match_sklearn(y_true, y_pred):
    assert_matches_sklearn(np.array(y_true), np.array(y_pred), 4)


def test_per_class_counts_and_names():
    y_true = np.array([0, 0, 0, 1, 2, 2])
    y_pred = np.array([0, 1, 0, 1, 2, 0])
    metrics = compute_metrics(y_true, y_pred, ["zebra", "lion", "gnu", "civet"], train_counts=[100, 10, 50, 1])
    rows = metrics.per_class()
    assert list(rows) == ["zebra", "lion", "gnu", "civet"]
    assert [rows[n]["count_test"] for n in rows] == [3, 1, 2, 0]
    assert [rows[n]["count_train"] for n in rows] == [100, 10, 50, 1]
    assert rows["zebra"]["precision"] == pytest.approx(2 / 3) and rows["zebra"]["recall"] == pytest.approx(2 / 3)
    assert rows["lion"]["precision"] == pytest.approx(0.5) and rows["lion"]["recall"] == 1.0
    assert rows["civet"] == {"precision": None, "recall": None, "f1": None, "count_train": 1, "count_test": 0}
    assert metrics.num_samples == 6


def test_rarest_and_commonest_accuracy():
    # train counts: class 0 most common ... class 5 rarest; class 5 has no test samples
    train = np.array([1000, 500, 100, 50, 10, 1])
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 4, 4])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 3, 0, 4, 0, 0])
    metrics = compute_metrics(y_true, y_pred, names(6), train_counts=train)
    # rarest 2 with test samples: classes 4 (1/3 right) and 3 (1/2 right) -> 2 of 5
    assert metrics.rarest_accuracy[2] == pytest.approx(2 / 5)
    assert metrics.rarest_accuracy[5] == pytest.approx((3 + 1 + 1 + 1 + 1) / 12)
    assert metrics.rarest_accuracy[10] is None  # only 5 classes have test samples
    # commonest 2: classes 0 (3/4) and 1 (1/2) -> 4 of 6
    assert metrics.commonest_accuracy[2] == pytest.approx(4 / 6)
    assert metrics.as_dict()["rarest_accuracy"] == {"2": pytest.approx(0.4), "5": pytest.approx(7 / 12), "10": None}


def test_tail_ties_keep_class_order():
    confusion = np.diag([1, 2, 3]).astype(np.int64)
    confusion[2, 0] = 3  # class 2: 3 of 6 right
    assert tail_accuracy(confusion, np.array([5, 5, 5]), 1, rarest=True) == 1.0  # class 0 first among ties
    assert tail_accuracy(confusion, np.array([5, 5, 1]), 1, rarest=True) == 0.5


def test_no_train_counts_means_no_tail_metrics():
    metrics = compute_metrics([0, 1], [0, 1], names(2))
    assert metrics.rarest_accuracy is None
    assert "rarest_accuracy" not in metrics.as_dict()


def test_empty_input():
    metrics = compute_metrics(np.array([], dtype=np.int64), np.array([], dtype=np.int64), names(3))
    assert metrics.accuracy == 0.0 and metrics.macro_f1 == 0.0 and metrics.num_samples == 0


@pytest.mark.parametrize(
    "y_true, y_pred, message",
    [([0, 3], [0, 1], "outside"), ([0, 1], [0], "one prediction per label"), ([0.5], [0], "integer"),
     ([-1], [0], "outside")],
)
def test_bad_labels_raise(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(np.array(y_true), np.array(y_pred), names(3))


def test_fast_on_serengeti_scale():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 52, 155_254)
    y_pred = np.where(rng.random(155_254) < 0.9, y_true, rng.integers(0, 52, 155_254))
    compute_metrics(y_true, y_pred, names(52), train_counts=rng.integers(1, 50_000, 52))
    start = time.perf_counter()
    for _ in range(5):
        compute_metrics(y_true, y_pred, names(52), train_counts=rng.integers(1, 50_000, 52))
    per_call = (time.perf_counter() - start) / 5
    assert per_call < 0.05, f"{per_call * 1e3:.1f} ms per call"
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 52).sum(axis=1), np.bincount(y_true, minlength=52))
