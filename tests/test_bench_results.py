"""bench/results.py and bench/targets.py: the README's table agrees with the one table; results and the CI check."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import results  # noqa: E402
from targets import TARGETS, Target  # noqa: E402


def test_readme_table_matches_targets():
    text = results.README.read_text()
    assert results.readme_with_table(text) == text, "bench/README.md is stale: run `python bench/results.py readme`"


def test_every_row_is_unique_and_floor_is_under_target():
    keys = [(t.benchmark, t.ratio) for t in TARGETS]
    assert len(keys) == len(set(keys))
    assert all(t.floor < t.target for t in TARGETS), "a floor equal to its target fails CI on noise"
    with pytest.raises(ValueError, match="floor"):
        Target("x", "y", 1.0, 2.0, "")


def test_every_benchmark_in_the_table_has_a_script():
    for benchmark in {t.benchmark for t in TARGETS}:
        assert (BENCH / f"{benchmark}.py").is_file() or (BENCH / f"{benchmark}.sh").is_file(), benchmark
    make = (BENCH.parent / "Makefile").read_text().split("bench-ci:", 1)[1].split("\n\n", 1)[0]
    for benchmark in {t.benchmark for t in TARGETS}:
        assert f"bench/{benchmark}." in make, f"make bench-ci does not run bench/{benchmark}"


def test_cpu_model_names_the_host_behind_the_name():
    zen5 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n"
            "flags\t\t: fpu sse2 avx2 avx512f\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 1\n")
    assert results.cpu_model(zen5) == "AMD EPYC (family 26 model 2, AVX-512)"
    zen3 = zen5.replace("26", "25").replace("model\t\t: 2", "model\t\t: 1").replace(" avx512f", "")
    assert results.cpu_model(zen3) == "AMD EPYC (family 25 model 1, AVX2)"
    assert results.cpu_model("model name\t: Some ARM\nFeatures\t: fp asimd\n") == "Some ARM (NEON)"
    assert results.cpu_model("") == (results.platform.processor() or results.platform.machine())


def test_write_result_then_check(tmp_path, capsys):
    path = results.write_result("shard", {"ours_images_per_s": 80.0}, {"naive_images_per_s": 20.0},
                                {"encode_vs_naive": 4.0, "encode_vs_decode": 1.0}, config={"repeats": 1}, ci=True,
                                out_dir=tmp_path)
    written = json.loads(path.read_text())
    assert written["ratios"] == {"encode_vs_naive": 4.0, "encode_vs_decode": 1.0}
    assert written["baseline"] == {"naive_images_per_s": 20.0}
    assert {"platform", "cpu_count", "cpu_model"} <= set(written["machine"])
    assert "python" in written["versions"] and written["date"]
    assert "4.00×" in capsys.readouterr().out
    shard_rows = tuple(t for t in TARGETS if t.benchmark == "shard")
    assert results.check(tmp_path, targets=shard_rows) == []
    assert "stale" in results.check(tmp_path, since=written["unix_time"] + 1, targets=shard_rows)[0]
    results.write_result("shard", {}, {}, {"encode_vs_naive": 0.1}, out_dir=tmp_path)
    assert "below its CI floor" in results.check(tmp_path, targets=shard_rows)[0]
    missing = results.check(tmp_path / "none", targets=shard_rows)
    assert "no readable result" in missing[0]


def test_a_ratio_without_a_row_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no row in bench/targets.py"):
        results.write_result("shard", {}, {}, {"invented": 1.0}, out_dir=tmp_path)


def test_a_skipped_result_passes_only_where_the_row_needs_hardware(tmp_path):
    gpu = (Target("gpu", "speed", 2.0, 1.0, "", needs="cuda"),)
    results.write_result("gpu", {}, {}, {}, out_dir=tmp_path, skipped="no CUDA device")
    assert results.check(tmp_path, targets=gpu) == []
    cpu = (Target("gpu", "speed", 2.0, 1.0, ""),)
    assert "need nothing special" in results.check(tmp_path, targets=cpu)[0]
