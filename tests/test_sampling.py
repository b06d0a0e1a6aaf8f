"""Sampling: exact ROS/RUS rules, exact per-epoch totals, determinism, shuffle quality, ranks, both readers, CLI."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sampling_fixtures import make_shard_dir, payload

from camtrap_fast import cli
from camtrap_fast.errors import UserError
from camtrap_fast.sampling import (
    SamplingSpec,
    class_targets,
    epoch_multiplicity,
    epoch_order,
    parse_ros_ratios,
    parse_sampling,
    plan_sampling,
    shard_for_rank,
)
from camtrap_fast.sampling.plan import SamplingPlan
from camtrap_fast.pipelines.streaming import iter_epoch_samples, stream_epoch
from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.shards.reader import ShardReader

S9_COUNTS = Path(__file__).resolve().parents[1] / "camtrap_fast" / "data" / "serengeti_s9_class_counts.json"
SHARD_COUNTS = {"common": 400, "mid": 120, "rare": 9, "empty": 0, "single": 1}


@pytest.fixture(scope="module")
def s9() -> dict[str, int]:
    return json.loads(S9_COUNTS.read_text())["train"]


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory) -> Path:
    return make_shard_dir(tmp_path_factory.mktemp("shards"), SHARD_COUNTS, samples_per_shard=64)


def labels_for(counts: list[int], seed: int = 0) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    return np.random.default_rng(seed).permutation(labels)


def targets(counts: dict[str, int], sampling: str) -> dict[str, int]:
    plan = plan_sampling(counts, parse_sampling(sampling))
    return dict(zip(plan.classes, plan.target))


# --- the study's rules, exactly -------------------------------------------------------------------


def test_paper_ros_on_season_9(s9):
    t = targets(s9, "paper-ros")
    assert t["wildebeest"] == 48377 and t["zebra"] == 36480  # >= cap: untouched
    assert t["elephant"] == 5000  # 4761 * 4 capped at 5000
    assert t["guineaFowl"] == 5000 and t["lionFemale"] == 4828 and t["baboon"] == 4012  # x4 band
    assert t["secretaryBird"] == 4410 and t["dikDik"] == 3540  # x6 band
    assert t["ostrich"] == 3824 and t["vervetMonkey"] == 944 and t["porcupine"] == 960  # x8 band
    assert t["batEaredFox"] == 960 and t["leopard"] == 480 and t["rodents"] == 10  # x10 band
    assert sum(t.values()) == 231437


def test_paper_rus_and_combinations_on_season_9(s9):
    rus = targets(s9, "paper-rus")
    assert (rus["wildebeest"], rus["zebra"], rus["gazelleThomsons"]) == (15000, 15000, 15000)
    assert rus["elephant"] == 4761 and rus["rodents"] == 1 and sum(rus.values()) == 85029
    both_15k = targets(s9, "paper-ros-rus-15k")
    assert both_15k["wildebeest"] == 15000 and both_15k["elephant"] == 5000 and both_15k["leopard"] == 480
    assert sum(both_15k.values()) == 161212
    both_5k = targets(s9, "paper-ros-rus-5k")
    assert both_5k["wildebeest"] == 5000 and both_5k["zebra"] == 5000 and both_5k["lionFemale"] == 4828
    assert targets(s9, "rus:15000,ros:5000") == both_15k  # ROS first, whatever order the terms come in
    assert targets(s9, "none") == s9


@pytest.mark.parametrize(
    "n, expected",
    [(0, 0), (1, 10), (99, 990), (100, 800), (499, 3992), (500, 3000), (833, 4998), (834, 5000), (999, 5000),
     (1000, 4000), (1249, 4996), (1250, 5000), (4999, 5000), (5000, 5000), (5001, 5001)],
)
def test_ros_band_edges(n, expected):
    assert class_targets(np.array([n]), parse_sampling("paper-ros"))[0] == expected


def test_custom_ros_ratios():
    spec = parse_sampling("ros:1000", "10:3,inf:2")
    assert class_targets(np.array([9, 10, 400, 600, 2000]), spec).tolist() == [27, 20, 800, 1000, 2000]
    assert spec.ros_ratios_text == "10:3,inf:2"


def test_sqrt_and_balanced(s9):
    counts = np.array(list(s9.values()) + [0])
    sqrt = class_targets(counts, parse_sampling("sqrt"))
    assert sqrt.sum() == counts.sum() and sqrt[-1] == 0
    quota = counts.sum() * np.sqrt(counts) / np.sqrt(counts).sum()
    assert np.all(np.abs(sqrt - quota) < 1)
    assert class_targets(counts, parse_sampling("balanced:250")).tolist() == [250] * len(s9) + [0]


@pytest.mark.parametrize(
    "text", ["paper-foo", "ros", "ros:x", "ros:0", "rus:-5", "ros:10,ros:20", "sqrt:3", "sqrt,ros:10", "balanced", ""]
)
def test_bad_specs_are_user_errors_listing_valid_forms(text):
    with pytest.raises(UserError, match="valid forms: a preset .*paper-ros-rus-15k.*balanced:N.*ros:5000,rus:15000"):
        parse_sampling(text)


@pytest.mark.parametrize("text", ["100:10,500:8", "500:8,100:10,inf:4", "100:0,inf:4", "100-10,inf:4", "inf:1.5"])
def test_bad_ros_ratios_are_user_errors(text):
    with pytest.raises(UserError, match="BOUND:RATIO"):
        parse_ros_ratios(text)


def test_plan_rejects_targets_for_empty_classes():
    with pytest.raises(ValueError, match="no images"):
        SamplingPlan(classes=("a",), original=(0,), target=(3,))


# --- exact totals and determinism for arbitrary counts and specs ---------------------------------

ratio_schedules = st.lists(st.integers(1, 300), min_size=0, max_size=3, unique=True).flatmap(
    lambda bounds: st.tuples(
        *(st.tuples(st.just(b), st.integers(1, 12)) for b in sorted(bounds)),
        st.tuples(st.just(math.inf), st.integers(1, 12)),
    )
)
caps = st.none() | st.integers(1, 400)
specs = st.one_of(
    st.builds(SamplingSpec, ros_cap=caps, rus_cap=caps, ros_ratios=ratio_schedules),
    st.just(SamplingSpec(sqrt=True)),
    st.builds(SamplingSpec, balanced=st.integers(1, 300)),
)
class_count_lists = st.lists(st.integers(0, 300), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(counts=class_count_lists, spec=specs, seed=st.integers(0, 2**32), epoch=st.integers(0, 1000))
def test_epoch_has_exact_class_totals_and_is_deterministic(counts, spec, seed, epoch):
    labels = labels_for(counts, seed=epoch)
    plan = plan_sampling({f"c{i}": n for i, n in enumerate(counts)}, spec)
    n, t = np.array(counts), np.array(plan.target)
    # Each regime's own promise.
    if spec.sqrt:
        assert t.sum() == n.sum()
    elif spec.balanced:
        assert t.tolist() == np.where(n > 0, spec.balanced, 0).tolist()
    else:
        assert np.all(t <= np.maximum(n, spec.ros_cap or 0)) and np.all((t > 0) == (n > 0))
        if spec.rus_cap:
            assert np.all(t <= spec.rus_cap)
        if spec.ros_cap is None:
            assert t.tolist() == np.minimum(n, spec.rus_cap or n.max()).tolist()
    order = epoch_order(labels, plan, seed, epoch)
    assert order.dtype == np.int64 and len(order) == plan.total_target
    assert np.bincount(labels[order], minlength=len(counts)).tolist() == list(plan.target)
    multiplicity = np.bincount(order, minlength=len(labels))
    # Every image of a class appears t // n or t // n + 1 times:
    # no image favoured, none duplicated while another is dropped.
    whole = (t // np.maximum(n, 1))[labels]
    assert np.all((multiplicity == whole) | (multiplicity == whole + 1))
    assert np.array_equal(multiplicity, epoch_multiplicity(labels, plan, seed, epoch))
    assert np.array_equal(order, epoch_order(labels, plan, seed, epoch))


def test_rus_never_duplicates_and_draws_anew_each_epoch(s9):
    counts = [min(n, 2000) for n in s9.values()]
    labels = labels_for(counts)
    plan = plan_sampling(dict(zip(s9, counts)), parse_sampling("rus:300"))
    first, second = (epoch_order(labels, plan, seed=7, epoch=e) for e in (0, 1))
    for order in (first, second):
        assert np.bincount(order).max() == 1
        assert np.bincount(labels[order]).tolist() == list(plan.target)
    assert set(first.tolist()) != set(second.tolist())


def test_order_rejects_labels_the_plan_was_not_made_for():
    plan = plan_sampling({"a": 3, "b": 2}, parse_sampling("none"))
    with pytest.raises(ValueError, match="class 'a' has 2 samples here, 3 in the plan"):
        epoch_order(np.array([0, 0, 1, 1]), plan, 0, 0)


def test_copies_of_an_image_share_a_batch_no_more_often_than_a_uniform_shuffle():
    counts = {"rare": 40, "mid": 300, "big": 3000}  # x10, x8, untouched under ros:2000
    labels = labels_for(list(counts.values()))
    plan = plan_sampling(counts, parse_sampling("ros:2000"))
    batch = 64
    total = plan.total_target
    sizes = [min(batch, total - start) for start in range(0, total, batch)]
    p_same_batch = sum(s * (s - 1) for s in sizes) / (total * (total - 1))
    observed = []
    for epoch in range(5):
        order = epoch_order(labels, plan, seed=3, epoch=epoch)
        multiplicity = np.bincount(order, minlength=len(labels))
        copy_pairs = (multiplicity * (multiplicity - 1) // 2).sum()
        same_batch = 0
        for start in range(0, total, batch):
            m = np.bincount(order[start : start + batch])
            same_batch += (m * (m - 1) // 2).sum()
        observed.append(same_batch)
    expected = copy_pairs * p_same_batch  # ~87 pairs; without the shuffle ~7,000
    assert np.mean(observed) <= 1.25 * expected, (observed, expected)


@pytest.mark.parametrize("length, world_size", [(0, 3), (2, 4), (10, 1), (10, 3), (12, 4), (1001, 8)])
def test_rank_parts_are_equal_length_and_cover_the_epoch(length, world_size):
    order = np.random.default_rng(length).permutation(length).astype(np.int64)
    parts = [shard_for_rank(order, world_size, r) for r in range(world_size)]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == -(-length // world_size)
    joined = np.concatenate(parts)
    assert set(joined.tolist()) == set(order.tolist())
    assert len(joined) - length < world_size  # only the wrap-around padding repeats
    dropped = [shard_for_rank(order, world_size, r, drop_last=True) for r in range(world_size)]
    assert {len(p) for p in dropped} == {length // world_size}
    assert len(set(np.concatenate(dropped).tolist())) == length // world_size * world_size


def test_rank_argument_errors():
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        shard_for_rank(np.arange(5), 2, 2)


# --- readers: random access and streaming ---------------------------------------------------------


def test_random_access_reads_the_order(shard_dir):
    manifest = load_manifest(shard_dir)
    index = manifest.load_index("train")
    plan = plan_sampling(SHARD_COUNTS, parse_sampling("ros:100,rus:200"))
    order = epoch_order(index.labels, plan, seed=1, epoch=4)
    with ShardReader(index, manifest.root) as reader:
        got = list(iter_epoch_samples(reader, order))
    assert [i for i, _, _ in got] == order.tolist()
    assert [label for _, _, label in got] == index.labels[order].tolist()
    assert all(jpg == payload(index.key(i)) for i, jpg, _ in got)


@pytest.mark.parametrize("scheme", ["path", "file", "pipe"])
def test_streaming_epoch_matches_the_random_access_epoch(shard_dir, scheme):
    manifest = load_manifest(shard_dir)
    index = manifest.load_index("train")
    plan = plan_sampling(SHARD_COUNTS, parse_sampling("ros:100,rus:200"))
    url = {"path": str, "file": lambda p: p.resolve().as_uri(), "pipe": lambda p: f"pipe:cat {p}"}[scheme]
    urls = [url(p) for p in manifest.shard_paths("train")]
    streamed = list(stream_epoch(urls, index, plan, seed=1, epoch=4, shuffle_buffer=50))
    labels = Counter(label for _, _, label in streamed)
    assert [labels[c] for c in range(len(SHARD_COUNTS))] == list(plan.target)
    order = epoch_order(index.labels, plan, seed=1, epoch=4)
    assert Counter(key for key, _, _ in streamed) == Counter(index.keys(order))
    assert all(jpg == payload(key) for key, jpg, _ in streamed)
    if scheme == "path":
        assert streamed == list(stream_epoch(urls, index, plan, seed=1, epoch=4, shuffle_buffer=50))
        by_key = dict(zip(index.keys(), index.labels.tolist()))
        assert streamed == list(stream_epoch(urls, by_key, plan, seed=1, epoch=4, shuffle_buffer=50))


def test_streaming_parts_together_are_the_epoch(shard_dir):
    manifest = load_manifest(shard_dir)
    index = manifest.load_index("train")
    plan = plan_sampling(SHARD_COUNTS, parse_sampling("paper-ros"))
    urls = [str(p) for p in manifest.shard_paths("train")]
    parts = [list(stream_epoch(urls, index, plan, 5, 0, shuffle_buffer=0, part=(i, 3))) for i in range(3)]
    order = epoch_order(index.labels, plan, seed=5, epoch=0)
    assert Counter(key for part in parts for key, _, _ in part) == Counter(index.keys(order))


def test_streaming_fails_loudly_on_missing_shards(shard_dir, tmp_path):
    manifest = load_manifest(shard_dir)
    index = manifest.load_index("train")
    plan = plan_sampling(SHARD_COUNTS, parse_sampling("none"))
    urls = [str(p) for p in manifest.shard_paths("train")]
    with pytest.raises(UserError, match="not in the 1 shards streamed"):
        list(stream_epoch(urls[:1], index, plan, 0, 0))
    with pytest.raises(UserError, match="shard not found"):
        list(stream_epoch([str(tmp_path / "nope.tar")], index, plan, 0, 0))


# --- CLI --------------------------------------------------------------------------------------------


@pytest.fixture
def run_cli(capsys):
    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(["plan", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_table_from_season_9_counts(run_cli):
    code, out, _ = run_cli(S9_COUNTS, "--sampling", "paper-ros")
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert rows["leopard"] == ["48", "480", "10.00"]
    assert rows["elephant"] == ["4761", "5000", "1.05"]
    assert rows["total"][:2] == ["155254", "231437"]


def test_cli_json_from_shard_dir_and_plain_counts_file(run_cli, shard_dir, tmp_path):
    code, out, _ = run_cli(shard_dir, "--sampling", "balanced:50", "--json")
    data = json.loads(out)
    assert code == 0 and set(data) == {"classes", "total_original", "total_target"}
    assert data["classes"]["rare"] == {"original": 9, "target": 50} and data["classes"]["empty"]["target"] == 0
    assert data["total_original"] == sum(SHARD_COUNTS.values()) and data["total_target"] == 200
    counts_file = tmp_path / "counts.json"
    counts_file.write_text(json.dumps(SHARD_COUNTS))
    assert json.loads(run_cli(counts_file, "--sampling", "balanced:50", "--json")[1]) == data


def test_cli_list_is_deterministic_and_splits_by_rank(run_cli, shard_dir):
    args = (shard_dir, "--sampling", "paper-ros", "--list", "--seed", 3)
    first = run_cli(*args, "--epoch", 2)[1].splitlines()
    assert first == run_cli(*args, "--epoch", 2)[1].splitlines()
    assert first != run_cli(*args, "--epoch", 3)[1].splitlines()
    index = load_manifest(shard_dir).load_index("train")
    plan = plan_sampling(SHARD_COUNTS, parse_sampling("paper-ros"))
    assert first == index.keys(epoch_order(index.labels, plan, seed=3, epoch=2))
    parts = [run_cli(*args, "--epoch", 2, "--world-size", 3, "--rank", r)[1].splitlines() for r in range(3)]
    assert len({len(p) for p in parts}) == 1 and set(sum(parts, [])) == set(first)


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--sampling", "paper-foo"), "unknown sampling preset 'paper-foo'; valid forms: a preset (none, paper-ros,"),
        (("--sampling", "ros:5000", "--list"), "--list needs a shard directory"),
        (("--sampling", "ros:5000", "--seed", "1"), "--seed only apply with --list"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(run_cli, argv, message):
    code, out, err = run_cli(S9_COUNTS, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("camtrap-fast plan: error: ") and message in err


def test_read_class_counts_accepts_both_shapes_and_rejects_bad_files(tmp_path):
    from camtrap_fast.shards.class_counts import read_class_counts

    flat, nested, bad = tmp_path / "flat.json", tmp_path / "nested.json", tmp_path / "bad.json"
    flat.write_text('{"zebra": 3, "civet": 1}')
    nested.write_text('{"train": {"zebra": 3}, "test": {"zebra": 1}}')
    bad.write_text('{"zebra": -1}')
    assert read_class_counts(flat) == {"zebra": 3, "civet": 1}
    assert read_class_counts(nested) == {"zebra": 3}
    with pytest.raises(UserError, match="whole numbers"):
        read_class_counts(bad)
    with pytest.raises(UserError, match="no such class-counts file"):
        read_class_counts(tmp_path / "missing.json")
