"""Fault injection: every user mistake and every fault in data or system ends in one line and a known exit code
(2: a user mistake, 1: a fault), loses nothing and leaves nothing half-written; results are never silently wrong.

One test (or a parametrized group) per row of the issue, on tiny inputs: real photos shrunk to 32 px
(`pipeline_fixtures.make_photo_shards`) or ENA24's 21 photos encoded at 32 px. Data side first; the training
side's rows are appended below.
"""

from __future__ import annotations


import pytest

from camtrap_fast.ingest.records import Record
from camtrap_fast.ingest.splits import SplitConfig, assign_splits

SMALL = ("--size", "32", "--quiet")


def one_error_line(err: str, command: str) -> str:
    """The single line a failed command printed; fails the test unless it is exactly one, and no traceback."""
    lines = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith(f"camtrap-fast {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- a CSV row with an extra unquoted field: exit 2 naming file and line ------------------------------------


@pytest.mark.parametrize("rows, line, found", [
    ("2480.jpg,Virginia Opossum\n2573.jpg,Grey, Fox\n", 3, "3 fields where the header has 2"),  # comma in a label
    ("2480.jpg,Virginia Opossum\n2573.jpg,Grey Fox2595.jpg,Grey Fox\n", 3, "3 fields"),  # appended, no newline
    ('2480.jpg,"Virginia\nOpossum"\n2573.jpg\n', 4, "1 field where the header has 2"),  # line numbers stay true
])
def test_csv_row_that_does_not_fit_the_header_is_exit_2_naming_file_and_line(tmp_path, cli, data_dir, rows, line,
                                                                             found):
    source = tmp_path / "labels.csv"
    source.write_text("filepath,label\n" + rows)
    code, _, err = cli("shard", source, tmp_path / "out", "--image-root", data_dir / "ena24-small", *SMALL)
    message = one_error_line(err, "shard")
    assert code == 2 and f"{source}:{line}: {found}" in message
    assert not (tmp_path / "out").exists()


# --- --drop-classes / --keep-fraction naming a class that does not exist: exit 2 with the closest names ------


@pytest.mark.parametrize("flag, value, named, closest", [
    ("--drop-classes", "Chiken", "'Chiken'", "'Chicken'"),
    ("--drop-classes", "Chicken,grey fx", "'grey fx'", "'Grey Fox'"),
    ("--keep-fraction", "american crows=0.5", "'american crows'", "'American Crow'"),
])
def test_filter_naming_an_unknown_class_is_exit_2_with_the_closest_names(tmp_path, cli, data_dir, flag, value,
                                                                         named, closest):
    code, _, err = cli("shard", data_dir / "ena24-small" / "labels.csv", tmp_path / "out", flag, value, *SMALL)
    message = one_error_line(err, "shard")
    assert code == 2 and f"{flag} {named}: the source has no class of that name" in message and closest in message
    assert not (tmp_path / "out").exists()


# --- a class with one capture sequence goes to train; two: train + test -------------------------------------


def _sequences(label: str, groups: int, frames: int = 3, **fields) -> list[Record]:
    return [Record(path=f"/d/{label}/{g}_{f}.jpg", relpath=f"{label}/{g}_{f}.jpg", label=label, seq_id=f"{label}{g}",
                   **fields) for g in range(groups) for f in range(frames)]


def test_class_with_one_or_two_sequences_is_always_trained_on():
    records = _sequences("common", 40) + _sequences("lone", 1) + _sequences("pair", 2)
    for seed in range(60):  # today a lone sequence lands in val or test about 21 % of the time
        out, _ = assign_splits(records, SplitConfig(seed=seed))
        assert {r.split for r in out if r.label == "lone"} == {"train"}, seed
        assert {r.split for r in out if r.label == "pair"} == {"train", "test"}, seed
    out, small = assign_splits(records, SplitConfig(fractions=(0.9, 0.1, 0.0), seed=1))
    assert {r.split for r in out if r.label == "pair"} == {"train", "val"}
    assert small == {"lone": ["val"]}


# --- a CSV that fixes `split` for some frames of a sequence but not others ----------------------------------


def test_a_split_fixed_for_some_frames_holds_for_the_whole_sequence():
    records = _sequences("zebra", 30)
    records[0] = Record(**{**records[0].__dict__, "split": "test"})  # frame 0 of sequence zebra0
    for seed in range(10):
        out, _ = assign_splits(records, SplitConfig(seed=seed))
        assert {r.split for r in out if r.seq_id == "zebra0"} == {"test"}, seed


def test_a_sequence_fixed_to_two_splits_is_exit_2_naming_it(tmp_path, cli, data_dir):
    source = tmp_path / "labels.csv"
    source.write_text("filepath,label,split,seq_id\n2480.jpg,opossum,train,S7\n2595.jpg,opossum,test,S7\n"
                      "2573.jpg,opossum,,S8\n")
    code, _, err = cli("shard", source, tmp_path / "out", "--image-root", data_dir / "ena24-small", *SMALL)
    message = one_error_line(err, "shard")
    assert code == 2 and "sequence 'S7' straddles splits" in message and "2595.jpg in test" in message
    assert not (tmp_path / "out").exists()
