"""Ingest, filters and splits on real source files."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from camtrap_fast.errors import UserError
from camtrap_fast.ingest import load_records
from camtrap_fast.ingest.filters import FilterConfig, apply_filters, parse_keep_fraction
from camtrap_fast.ingest.records import Record
from camtrap_fast.ingest.splits import SplitConfig, assign_splits


def test_coco_and_csv_of_ena24_agree(data_dir):
    fmt_coco, coco = load_records(data_dir / "ena24-small" / "coco_annotations.json")
    fmt_csv, table = load_records(data_dir / "ena24-small" / "labels.csv")
    assert (fmt_coco, fmt_csv) == ("coco", "csv")
    assert len(coco) == len(table) == 21
    assert {(r.path, r.label) for r in coco} == {(r.path, r.label) for r in table}
    assert all(Path(r.path).is_file() for r in coco)
    # real label noise is kept as is
    assert {r.label for r in coco if r.path.endswith("/6039.jpg")} == {"Chicken"}


def test_folder_of_class_folders(tmp_path, data_dir):
    for name in ("ocelot", "domestic_dog"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.jpg").symlink_to(data_dir / "edge-cases" / f"{name}.jpg")
    (tmp_path / "ocelot" / ".hidden.jpg").write_bytes(b"x")
    fmt, records = load_records(tmp_path)
    assert fmt == "folder"
    assert [(r.label, r.relpath) for r in records] == [
        ("domestic_dog", "domestic_dog/domestic_dog.jpg"),
        ("ocelot", "ocelot/ocelot.jpg"),
    ]


def test_image_root_overrides_relative_base(tmp_path, data_dir):
    csv = tmp_path / "labels.csv"
    csv.write_text("filepath,label\n2480.jpg,Virginia Opossum\n")
    _, records = load_records(csv, image_root=data_dir / "ena24-small")
    assert Path(records[0].path).resolve() == (data_dir / "ena24-small" / "2480.jpg").resolve()


def test_coco_sequence_fields_and_multi_species(tmp_path):
    coco = {
        "images": [
            {"id": "a", "file_name": "x/a.jpg", "seq_id": "s1", "frame_num": 1, "location": "L1", "datetime": "2020-01-01 10:00:00"},
            {"id": "b", "file_name": "x/b.jpg"},
        ],
        "annotations": [
            {"id": 1, "image_id": "a", "category_id": 1},
            {"id": 2, "image_id": "b", "category_id": 1},
            {"id": 3, "image_id": "b", "category_id": 2},
            {"id": 4, "image_id": "b", "category_id": 2},
        ],
        "categories": [{"id": 1, "name": "zebra"}, {"id": 2, "name": "human"}],
    }
    path = tmp_path / "cct.json"
    path.write_text(json.dumps(coco))
    _, (a, b) = load_records(path)
    assert (a.seq_id, a.frame_num, a.location, a.datetime) == ("s1", 1, "L1", "2020-01-01 10:00:00")
    assert a.metadata() == {"source": "x/a.jpg", "seq_id": "s1", "frame_num": 1, "location": "L1",
                            "datetime": "2020-01-01 10:00:00"}
    assert b.labels == ("human", "zebra") and b.label == "human"  # most annotated class first

    kept, rejected = apply_filters([a, b], FilterConfig(drop_multi_species=True))
    assert kept == [a] and [r.reason for r in rejected] == ["multi-species"]
    # dropping one of the two classes makes b a single-species zebra image
    kept, rejected = apply_filters([a, b], FilterConfig(drop_classes=("HUMAN",), drop_multi_species=True))
    assert [r.label for r in kept] == ["zebra", "zebra"] and rejected == []


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "not a COCO Camera Traps file"),
        ('{"images": []}', "no annotations, categories list"),
        ('{"images": [], "annotations": [], "info": {}, "detection_categories": {}}', "MegaDetector"),
        ("{not json", "invalid JSON"),
    ],
)
def test_bad_coco_is_one_line_user_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        load_records(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_megadetector_file_is_refused(data_dir):
    with pytest.raises(UserError, match="not a COCO Camera Traps file"):
        load_records(data_dir / "ena24-small" / "md_annotations.json")


def test_csv_errors(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("file,species\na.jpg,zebra\n")
    with pytest.raises(UserError, match="missing column"):
        load_records(path)
    path.write_text("filepath,label,split\na.jpg,zebra,holdout\n")
    with pytest.raises(UserError, match=r"l.csv:2: split 'holdout'"):
        load_records(path)
    with pytest.raises(UserError, match="no such file"):
        load_records(tmp_path / "missing.csv")
    with pytest.raises(UserError, match="unknown source format"):
        load_records(_touch(tmp_path / "x.parquet"))
    with pytest.raises(UserError, match="unknown format 'xml'"):
        load_records(path, format="xml")


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _records(counts: dict[str, int], seq_len: int = 1) -> list[Record]:
    out = []
    for label, n in counts.items():
        for i in range(n):
            out.append(Record(path=f"/d/{label}/{i}.jpg", relpath=f"{label}/{i}.jpg", label=label,
                              seq_id=f"{label}-{i // seq_len}" if seq_len > 1 else None))
    return out


def test_keep_fraction_is_seeded_and_exact():
    records = _records({"empty": 100, "zebra": 10})
    config = FilterConfig(keep_fraction=parse_keep_fraction("Empty=0.1"), seed=3)
    kept, rejected = apply_filters(records, config)
    assert sum(r.label == "empty" for r in kept) == 10 and len(rejected) == 90
    assert {r.reason for r in rejected} == {"kept-fraction"}
    again, _ = apply_filters(records, config)
    other, _ = apply_filters(records, FilterConfig(keep_fraction=(("empty", 0.1),), seed=4))
    assert kept == again and kept != other
    with pytest.raises(UserError):
        parse_keep_fraction("empty")


def test_unlabelled_and_duplicates_are_rejected():
    records = _records({"zebra": 2}) + [Record(path="/d/x.jpg", relpath="x.jpg", label="")]
    records.append(records[0])
    kept, rejected = apply_filters(records, FilterConfig())
    assert len(kept) == 2
    assert sorted(r.reason for r in rejected) == ["duplicate entry", "unlabelled"]


def test_split_is_stratified_and_grouped_by_sequence():
    records = _records({"wildebeest": 600, "zebra": 300, "rare": 30}, seq_len=3)
    out, small = assign_splits(records, SplitConfig(seed=1))
    per_seq = defaultdict(set)
    for r in out:
        per_seq[r.seq_id].add(r.split)
    assert all(len(splits) == 1 for splits in per_seq.values())  # frames never straddle splits
    for label, n in {"wildebeest": 600, "zebra": 300, "rare": 30}.items():
        train = sum(r.split == "train" for r in out if r.label == label)
        assert abs(train / n - 0.8) < 0.05
    assert small == {}
    assert out == assign_splits(records, SplitConfig(seed=1))[0]


def test_split_puts_every_class_with_enough_groups_in_every_split():
    # a greedy rule would put all 6 images of these rare classes in train, leaving them unevaluated
    records = _records({f"species{i}": 6 for i in range(52)} | {"common": 1000})
    out, small = assign_splits(records, SplitConfig(seed=0))
    assert small == {}
    for label in {r.label for r in records}:
        assert {r.split for r in out if r.label == label} == {"train", "val", "test"}
    common = [r.split for r in out if r.label == "common"]
    assert abs(common.count("train") / 1000 - 0.8) < 0.02 and abs(common.count("test") / 1000 - 0.1) < 0.02


def test_split_reports_classes_too_small_and_csv_split_wins():
    records = _records({"zebra": 50, "zorilla": 2})
    out, small = assign_splits(records, SplitConfig())
    zorilla_splits = {r.split for r in out if r.label == "zorilla"}
    assert small == {"zorilla": [s for s in ("train", "val", "test") if s not in zorilla_splits]}
    assert len(small["zorilla"]) >= 1  # 2 images cannot cover 3 splits
    fixed = [Record(path="/a.jpg", relpath="a.jpg", label="zebra", split="test")]
    out, small = assign_splits(fixed, SplitConfig())
    assert out[0].split == "test" and small == {}


def test_split_config_validation():
    with pytest.raises(UserError):
        SplitConfig(fractions=(0.5, 0.2, 0.2))
    with pytest.raises(UserError):
        SplitConfig(group_by="camera")
