"""Fault injection: every user mistake and every fault in data or system ends in one line and a known exit code
(2: a user mistake, 1: a fault), loses nothing and leaves nothing half-written; results are never silently wrong.

One test (or a parametrized group) per row of the issue, on tiny inputs: real photos shrunk to 32 px
(`pipeline_fixtures.make_photo_shards`) or ENA24's 21 photos encoded at 32 px. Data side first; the training
side's rows are appended below.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from camtrap_fast.errors import Fault
from camtrap_fast.ingest.records import Record
from camtrap_fast.ingest.splits import SplitConfig, assign_splits
from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.shards.reader import DamagedSample, ShardReader
from pipeline_fixtures import copy_shards, flip_bit, make_photo_shards

REPO = Path(__file__).resolve().parents[1]
SMALL = ("--size", "32", "--quiet")


def one_error_line(err: str, command: str) -> str:
    """The single line a failed command printed; fails the test unless it is exactly one, and no traceback."""
    lines = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith(f"camtrap-fast {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, data_dir):
    """12 real photos (shrunk) in 3 class folders, sharded at 32 px, 4 samples a shard, all in train."""
    return make_photo_shards(tmp_path_factory.mktemp("faults"), data_dir, images=12, classes=3, size=32, shard_size=4)


@pytest.fixture(scope="module")
def ena24(tmp_path_factory, data_dir):
    """ENA24's 21 photos in train/val/test at 32 px: a shard directory with every split."""
    from camtrap_fast.cli import main

    out = tmp_path_factory.mktemp("ena24") / "shards"
    assert main(["shard", str(data_dir / "ena24-small" / "labels.csv"), str(out), "--split", "0.34,0.33,0.33",
                 "--shard-size", "3", *SMALL]) == 0
    return load_manifest(out)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- manifest edited (class counts, class list): a checksum per field; a mismatch is exit 1 ----------------


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1))


EDITS = {
    "splits.train.class_counts": lambda d: d["splits"]["train"]["class_counts"].update({"Chicken": 50}),
    "classes": lambda d: d.update(classes=d["classes"][:-1]),
    "splits.train.samples": lambda d: d["splits"]["train"].update(samples=99),
    "image_size": lambda d: d.update(image_size=256),
}


@pytest.mark.parametrize("field", EDITS)
def test_edited_manifest_is_exit_1_naming_file_and_field(ena24, tmp_path, cli, data_dir, field):
    edited = copy_shards(ena24, tmp_path / "edited").root
    _edit(edited / "manifest.json", EDITS[field])
    with pytest.raises(Fault, match=f"manifest.json: field '{field}' does not match its checksum"):
        load_manifest(edited)
    commands = [
        ("plan", edited, "--sampling", "paper-ros"),  # today: silently plans from the edited counts
        ("plan", edited, "--sampling", "none", "--list"),
        ("verify", edited),
        ("shard", data_dir / "ena24-small" / "labels.csv", edited, "--split", "0.34,0.33,0.33", "--shard-size", "3",
         *SMALL),  # the same run again: an edited output is not "already complete"
    ]
    for command, *args in commands:
        code, out, err = cli(command, *args)
        line = one_error_line(err, command)
        assert code == 1 and str(edited / "manifest.json") in line and f"'{field}'" in line, (command, err)
        assert out == ""


def test_stale_index_is_exit_1_naming_index_and_manifest(ena24, tmp_path, cli):
    stale = copy_shards(ena24, tmp_path / "stale").root
    shutil.copy(stale / "val" / "index.npz", stale / "train" / "index.npz")  # another split's index
    manifest = load_manifest(stale)
    with pytest.raises(Fault, match=r"train/index.npz: .*manifest.json"):
        manifest.load_index("train")
    code, _, err = cli("plan", stale, "--sampling", "none", "--list")
    assert code == 1 and "train/index.npz" in one_error_line(err, "plan")


def test_index_labels_out_of_range_are_caught_on_load(ena24, tmp_path):
    """Today: `IndexError: Target 7 is out of bounds` inside training."""
    broken = copy_shards(ena24, tmp_path / "labels")
    index = broken.load_index("train")
    index.labels[0] = broken.num_classes  # a class the model has no output for
    index.save(broken.index_path("train"))
    with pytest.raises(Fault, match=f"holds class index {broken.num_classes}, but manifest.json has"):
        broken.load_index("train")


def test_manifest_from_before_checksums_still_loads_with_a_warning(ena24, tmp_path, caplog):
    old = copy_shards(ena24, tmp_path / "old").root

    def downgrade(data):
        data.update(format="camtrap-fast-shards/1")
        del data["checksums"], data["dropped_classes"]

    _edit(old / "manifest.json", downgrade)
    with caplog.at_level(logging.WARNING):
        manifest = load_manifest(old)
    assert manifest.classes == ena24.classes and "older camtrap-fast" in caplog.text
    _edit(old / "manifest.json", lambda d: d["splits"]["train"]["class_counts"].update({"Chicken": 5}))
    with pytest.raises(Fault, match="'splits.train.samples' is 7, its class counts add up to 11"):
        load_manifest(old)  # no checksum to compare, but the counts no longer add up


# --- a damaged shard: CRC-32 per sample, checked on every read; `camtrap-fast verify` ------------------------


def test_flipped_bit_in_jpeg_data_is_caught_on_read(photos, tmp_path):
    broken = copy_shards(photos, tmp_path / "flip")
    shard, key = flip_bit(broken, 5)
    index = broken.load_index("train")
    data = open(shard, "rb").read()[int(index.offsets[5]):int(index.offsets[5]) + int(index.sizes[5])]
    Image.open(io.BytesIO(data)).load()  # what made this silent: the damaged JPEG decodes without complaint
    with ShardReader(index, broken.root) as reader:
        with pytest.raises(DamagedSample, match=f"{shard}: sample '{key}' is damaged \\(CRC32 mismatch\\)"):
            reader.read(5)
        assert reader.read(4)  # the others read fine


def _loader(manifest, backend: str, **overrides):
    from camtrap_fast.pipelines import LoaderConfig, make_loader

    config = LoaderConfig(mode="eval", backend=backend, device="cpu", batch_size=4, image_size=32,
                          workers=overrides.pop("workers", 0 if backend == "pil" else 1), **overrides)
    return make_loader(manifest, "train", config)


@pytest.mark.parametrize("backend, workers", [("pil", 0), ("pil", 2), ("dali", 1)])
def test_loaders_treat_a_crc_mismatch_as_a_corrupt_sample(photos, tmp_path, backend, workers, caplog):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    broken = copy_shards(photos, tmp_path / "flip")
    shard, key = flip_bit(broken, 6)
    with _loader(broken, backend, workers=workers) as loader:
        with pytest.raises(Fault, match=f"{shard}: sample '{key}' is damaged \\(CRC32 mismatch\\)"):
            list(loader.epoch(np.arange(12)))
    with _loader(broken, backend, workers=workers, skip_corrupt=True) as loader, caplog.at_level(logging.WARNING):
        labels = torch.cat([y for _, y in loader.epoch(np.arange(12))])
    assert loader.skipped == 1 and len(labels) == 11 and key in caplog.text


def test_streamed_samples_are_checked_too(photos, tmp_path):
    from camtrap_fast.pipelines.streaming import stream_epoch
    from camtrap_fast.sampling import parse_sampling, plan_sampling

    broken = copy_shards(photos, tmp_path / "flip")
    shard, key = flip_bit(broken, 2)
    index = broken.load_index("train")
    plan = plan_sampling(dict(zip(broken.classes, index.class_counts(broken.num_classes).tolist())),
                         parse_sampling("none"))
    urls = [f"pipe:cat {p}" for p in broken.shard_paths("train")]
    with pytest.raises(DamagedSample, match=f"sample '{key}' is damaged"):
        list(stream_epoch(urls, index, plan, seed=0, epoch=0))
    damaged = []
    samples = list(stream_epoch(urls, index, plan, seed=0, epoch=0, on_damaged=damaged.append))
    assert len(samples) == 11 and key not in {k for k, _, _ in samples} and len(damaged) == 1
    for workers in (0, 2):  # the loader applies its corrupt-sample policy to it
        with _loader(broken, "pil", workers=workers) as loader:
            with pytest.raises(Fault, match=f"sample '{key}' is damaged"):
                list(loader.stream(urls, plan, seed=0))
        with _loader(broken, "pil", workers=workers, skip_corrupt=True) as loader:
            assert sum(len(y) for _, y in loader.stream(urls, plan, seed=0)) == 11 and loader.skipped == 1


def test_verify_finds_one_flipped_byte_and_names_shard_and_key(photos, tmp_path, cli):
    code, out, err = cli("verify", photos.root)
    assert code == 0 and err == "" and "OK, 12 samples in 3 shards" in out
    broken = copy_shards(photos, tmp_path / "flip")
    shard, key = flip_bit(broken, 9)
    code, out, err = cli("verify", broken.root)
    assert code == 1 and out.splitlines() == [f"{shard}: sample '{key}' is damaged (CRC32 mismatch in its JPEG)"]
    assert "1 problem in 1 file" in one_error_line(err, "verify")


def test_verify_reports_missing_left_over_cut_off_and_mismatched_files(photos, tmp_path, cli):
    broken = copy_shards(photos, tmp_path / "broken").root
    train = broken / "train"
    (train / "shard-000002.tar").unlink()
    shutil.copy(train / "shard-000000.tar", train / "shard-000007.tar")  # a shard the manifest does not list
    with open(train / "shard-000001.tar", "r+b") as f:
        f.truncate(3000)
    idx = (train / "shard-000000.idx").read_text().replace(" jpg ", " jpg 1", 1)
    (train / "shard-000000.idx").write_text(idx)
    code, out, err = cli("verify", broken)
    assert code == 1 and one_error_line(err, "verify")
    assert f"{train / 'shard-000002.tar'}: is missing" in out
    assert f"{train / 'shard-000007.tar'}: is not listed in manifest.json" in out
    assert f"{train / 'shard-000001.tar'}: is cut off at byte 3000" in out
    assert f"{train / 'shard-000000.idx'}: does not match its tar" in out


def test_verify_names_a_damaged_tar_header_and_the_samples_behind_it(photos, tmp_path, cli):
    broken = copy_shards(photos, tmp_path / "header")
    shard = broken.root / "train" / "shard-000001.tar"
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    first, header = members[0].name.split(".")[0], members[3].offset  # the second sample's first header
    with open(shard, "r+b") as f:
        f.seek(header + 10)
        f.write(b"?")
    code, out, err = cli("verify", broken.root)
    assert code == 1 and one_error_line(err, "verify")
    assert f"{shard}: has a damaged tar header at byte {header} after sample '{first}' (bad checksum)" in out
    assert f"{shard}: sample '{members[3].name.split('.')[0]}' is missing from the tar (3 samples are)" in out


def test_index_from_before_crc32_still_reads_unchecked(photos, tmp_path, cli):
    old = copy_shards(photos, tmp_path / "old")
    index = old.load_index("train")
    with np.load(old.index_path("train")) as data:
        arrays = {name: data[name] for name in data.files if name != "crc32"}
    np.savez(old.index_path("train"), **arrays)
    assert old.load_index("train").crc32 is None
    with ShardReader(old.load_index("train"), old.root) as reader:
        assert reader.read(3) == ShardReader(index, photos.root).read(3)
    code, out, _ = cli("verify", old.root)
    assert code == 0 and "CRC-32 not checked in train" in out


def test_progress_logged_before_crc32_gets_it_from_the_shard(photos):
    """A run killed under an older camtrap-fast logged 4 values a sample; resuming reads each CRC-32 back."""
    from camtrap_fast.shards.progress import logged_entries as _logged_entries

    index = photos.load_index("train")
    rows = np.flatnonzero(index.shard_ids == 1)
    logged = [{"shard": index.shards[1], "samples": [[index.key(int(i)), int(index.labels[i]), int(index.offsets[i]),
                                                      int(index.sizes[i])] for i in rows]}]
    assert [e[5] for e in _logged_entries(photos.root, logged)] == index.crc32[rows].tolist()


# --- a CSV row with an extra unquoted field: exit 2 naming file and line ------------------------------------


@pytest.mark.parametrize("rows, line, found", [
    ("2480.jpg,Virginia Opossum\n2573.jpg,Grey, Fox\n", 3, "3 fields where the header has 2"),  # comma in a label
    ("2480.jpg,Virginia Opossum\n2573.jpg,Grey Fox2595.jpg,Grey Fox\n", 3, "3 fields"),  # appended, no newline
    ("2480.jpg,Virginia Opossum\n\n2573.jpg\n", 4, "1 field where the header has 2"),  # a blank line counts
])
def test_csv_row_that_does_not_fit_the_header_is_exit_2_naming_file_and_line(tmp_path, cli, data_dir, rows, line,
                                                                             found):
    source = tmp_path / "labels.csv"
    source.write_text("filepath,label\n" + rows)
    code, _, err = cli("shard", source, tmp_path / "out", "--image-root", data_dir / "ena24-small", *SMALL)
    message = one_error_line(err, "shard")
    assert code == 2 and f"{source}:{line}: {found}" in message
    assert not (tmp_path / "out").exists()


def test_csv_value_running_over_lines_from_an_unclosed_quote_is_exit_2(tmp_path, cli, data_dir):
    source = tmp_path / "labels.csv"
    source.write_text('filepath,label\n2480.jpg,"Grey Fox\n2573.jpg,Grey Fox\n')  # the quote is never closed
    code, _, err = cli("shard", source, tmp_path / "out", "--image-root", data_dir / "ena24-small", *SMALL)
    message = one_error_line(err, "shard")
    assert code == 2 and f"{source}:2: the label value runs over lines 2-3" in message  # today: a class "Grey Fox\n..."


# --- COCO annotations of image ids that do not exist: counted and reported ----------------------------------


def test_coco_annotations_of_unknown_images_are_reported(tmp_path, cli, data_dir):
    coco = json.loads((data_dir / "ena24-small" / "coco_annotations.json").read_text())
    gone = [image["id"] for image in coco["images"][:2]]
    coco["images"] = coco["images"][2:]  # the annotations of these two images stay
    source = tmp_path / "cct.json"
    source.write_text(json.dumps(coco))
    out = tmp_path / "out"
    code, _, err = cli("shard", source, out, "--image-root", data_dir / "ena24-small", *SMALL)
    assert code == 0
    assert "warning: 2 annotations name an image id the source's 'images' list lacks" in err
    with open(out / "rejected.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["reason"] == "unknown image id"]
    assert sorted(row["detail"].split()[1] for row in rows) == sorted(repr(i) for i in gone)
    assert all(row["path"].startswith(f"{source}#annotation=") for row in rows)
    manifest = load_manifest(out)
    assert manifest.rejected == 2 and sum(info.samples for info in manifest.splits.values()) == 19


@pytest.mark.parametrize("entry, change", [
    ("annotations", {"image_id": [1]}), ("images", {"id": {"x": 1}}), ("categories", {"id": None}),
])
def test_coco_ids_that_are_not_strings_or_numbers_are_exit_2(tmp_path, cli, data_dir, entry, change):
    coco = json.loads((data_dir / "ena24-small" / "coco_annotations.json").read_text())
    coco[entry][0].update(change)  # today: TypeError: unhashable type
    source = tmp_path / "cct.json"
    source.write_text(json.dumps(coco))
    code, _, err = cli("shard", source, tmp_path / "out", "--image-root", data_dir / "ena24-small", *SMALL)
    assert code == 2 and "a string or whole number" in one_error_line(err, "shard")


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


# --- classes emptied by rejections: no dead output; "too small" said after decoding -------------------------


def _folder(root: Path, edge: Path, layout: dict[str, list[str]]) -> Path:
    for label, names in layout.items():
        (root / label).mkdir(parents=True)
        for n, name in enumerate(names):
            (root / label / f"{n}_{name}").symlink_to(edge / name)
    return root


def test_class_whose_images_are_all_unreadable_or_missing_gets_no_output(tmp_path, cli, data_dir):
    edge = data_dir / "edge-cases"
    source = _folder(tmp_path / "photos", edge, {
        "elephant": ["african_elephants.jpg", "african_elephants_bw.jpg", "african_elephants_cmyk.jpg",
                     "african_elephants_with_exif_orientation.jpg"],
        "blank": ["blank.jpg", "blank2.jpg", "blank3.jpg"],
        "okapi": ["african_elephants_truncated_file.jpg", "african_elephants_truncated_file.jpg"],  # unreadable
        "zebra": ["domestic_dog.jpg", "ocelot.jpg", "african_elephants_truncated_file.jpg"],  # 2 of 3 readable
    })
    (source / "ghost").mkdir()
    (source / "ghost" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")  # missing
    code, _, err = cli("shard", source, tmp_path / "out", "--split", "0.34,0.33,0.33", *SMALL)
    assert code == 0
    manifest = load_manifest(tmp_path / "out")
    assert manifest.classes == ("blank", "elephant", "zebra")  # today: okapi and ghost are dead outputs
    assert manifest.dropped_classes == {
        "ghost": "no image of it reached a train shard (1 listed: 1 missing file)",
        "okapi": "no image of it reached a train shard (2 listed: 2 truncated)",
    }
    assert "warning: class 'okapi' has no output" in err and "warning: class 'ghost' has no output" in err
    # decided from what was decoded: zebra's 2 readable images go to train and test, none to val
    assert manifest.small_classes == {"zebra": ["val"]}
    assert "warning: class 'zebra' is too small to appear in val" in err
    assert manifest.splits["train"].class_counts["zebra"] == 1


def test_class_emptied_while_the_train_split_is_written_is_refused(tmp_path, cli, data_dir):
    edge = data_dir / "edge-cases"
    source = _folder(tmp_path / "photos", edge, {
        "okapi": ["african_elephants_truncated_file.jpg"] * 6,  # too many to decode-check up front
        "dog": ["domestic_dog.jpg", "blank.jpg", "ocelot.jpg"],
    })
    code, _, err = cli("shard", source, tmp_path / "out", *SMALL)
    message = one_error_line(err, "shard")
    assert code == 2 and "class 'okapi' has no training image left" in message and "truncated" in message
    assert "--drop-classes 'okapi'" in message
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_class_the_source_puts_only_in_val_or_test_gets_no_output(tmp_path, cli, data_dir):
    source = tmp_path / "labels.csv"
    source.write_text("filepath,label,split\n2480.jpg,opossum,\n2595.jpg,opossum,\n2573.jpg,fox,test\n"
                      "596.jpg,fox,val\n")
    code, _, err = cli("shard", source, tmp_path / "out", "--image-root", data_dir / "ena24-small", *SMALL)
    assert code == 0 and "warning: class 'fox' has no output" in err
    assert load_manifest(tmp_path / "out").classes == ("opossum",)
    with open(tmp_path / "out" / "rejected.csv", newline="") as f:
        assert Counter(row["reason"] for row in csv.DictReader(f)) == {"no training image": 2}


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
    records[0] = dataclasses.replace(records[0], split="test")  # frame 0 of sequence zebra0
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


# --- shard --overwrite with user files in OUT/train/: only ever delete files this tool wrote ----------------


@pytest.mark.parametrize("where", ["train/notes.txt", "val/keep/me.jpg", "test/.mine.tmp"])
def test_overwrite_refuses_and_deletes_nothing_when_out_holds_user_files(ena24, tmp_path, cli, data_dir, where):
    out = copy_shards(ena24, tmp_path / "out").root
    user_file = out / where
    user_file.parent.mkdir(parents=True, exist_ok=True)
    user_file.write_text("the user's")
    before = _files(out)
    code, _, err = cli("shard", data_dir / "ena24-small" / "labels.csv", out, "--overwrite", "--size", "48", "--quiet")
    message = one_error_line(err, "shard")
    assert code == 2 and str(user_file if where != "val/keep/me.jpg" else out / "val" / "keep") in message
    assert _files(out) == before  # nothing deleted: not the user's file, not the previous output


def test_output_folder_inside_a_class_folder_source_is_refused(tmp_path, cli, photos):
    source = photos.root.parent / "photos"
    for out in (source / "shards", source):  # today: the rerun reads the shards as a class "shards"
        code, _, err = cli("shard", source, out, *SMALL)
        assert code == 2 and f"{out}: is inside the source folder" in one_error_line(err, "shard")
    assert not (source / "shards").exists()


def test_damaged_manifest_is_named_when_the_same_run_comes_again(ena24, tmp_path, cli, data_dir):
    out = copy_shards(ena24, tmp_path / "out").root
    (out / "manifest.json").write_text((out / "manifest.json").read_text()[:300])  # cut off
    args = ("shard", data_dir / "ena24-small" / "labels.csv", out, "--split", "0.34,0.33,0.33", "--shard-size", "3",
            *SMALL)
    code, _, err = cli(*args)
    assert code == 1 and f"{out / 'manifest.json'}: damaged" in one_error_line(err, "shard")
    assert cli(*args, "--overwrite")[0] == 0 and load_manifest(out).classes == ena24.classes


# --- disk full, read-only or immutable output folder, permission denied: exit 1, path and errno, no temporary


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_disk_full_is_exit_1_naming_the_file_and_leaves_no_temporary(tmp_path, data_dir):
    """A file-size limit makes the kernel refuse the write (EFBIG) as a full disk does (ENOSPC)."""
    out = tmp_path / "out"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16_000, 16_000))

    run = subprocess.run([sys.executable, "-m", "camtrap_fast", "shard", str(data_dir / "ena24-small" / "labels.csv"),
                          str(out), "--size", "64", "--quiet"], preexec_fn=limit, capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 1
    message = one_error_line(run.stderr, "shard")
    assert f"{out / 'train' / 'shard-000000.tar'}: cannot write (File too large)" in message
    assert not _temporaries(out) and not (out / "manifest.json").exists()


def test_write_failure_on_a_dali_index_removes_the_shard_being_written(photos, tmp_path, cli, monkeypatch):
    """Today the tar's temporary stays behind when the .idx beside it cannot be written."""
    import camtrap_fast.atomic as atomic

    real_open = os.open

    def full_disk(path, flags, mode=0o777, **kw):
        if str(path).endswith(".tmp") and ".shard-000001.idx." in str(path):
            raise OSError(28, "No space left on device", str(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(atomic.os, "open", full_disk)
    out = tmp_path / "out"
    code, _, err = cli("shard", photos.root.parent / "photos", out, "--shard-size", "4", *SMALL)
    assert code == 1
    assert f"{out / 'train' / 'shard-000001.idx'}: cannot write (No space left on device)" in one_error_line(err, "shard")
    assert not _temporaries(out) and not (out / "manifest.json").exists()


def test_interrupt_mid_shard_leaves_no_temporary(photos, tmp_path, cli, monkeypatch):
    from camtrap_fast.shards import pool

    real, calls = pool._encode_one, []

    def interrupted(path):
        calls.append(path)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(pool, "_encode_one", interrupted)
    out = tmp_path / "out"
    code, _, err = cli("shard", photos.root.parent / "photos", out, "--shard-size", "4", *SMALL)
    assert code == 130 and "interrupted" in err
    assert not _temporaries(out) and not (out / "manifest.json").exists()


class _Unwritable:
    """Make a folder refuse changes: `chattr +i` as root (root ignores file modes), else mode 0555."""

    def __init__(self, path: Path):
        self.path, self.root = path, os.geteuid() == 0

    def __enter__(self):
        if self.root:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(self.path)]).returncode:
                pytest.skip("cannot make a folder immutable here (chattr)")
        else:
            self.path.chmod(0o555)
        return self

    def __exit__(self, *exc):
        if self.root:
            subprocess.run(["chattr", "-i", str(self.path)], check=True)
        else:
            self.path.chmod(0o755)


@pytest.mark.parametrize("case", ["out", "parent", "split"])
def test_unwritable_output_is_exit_1_naming_path_and_errno(ena24, tmp_path, cli, data_dir, case):
    target = {"out": tmp_path / "out", "parent": tmp_path / "locked" / "out", "split": tmp_path / "old"}[case]
    locked = {"out": target, "parent": target.parent, "split": target / "train"}[case]
    if case == "split":
        copy_shards(ena24, target)
    else:
        locked.mkdir(parents=True)
    words = "Operation not permitted" if os.geteuid() == 0 else "Permission denied"
    expected = {
        "out": f"{target / '.shard-run.json'}: cannot write ({words})",
        "parent": f"{target}: cannot create the output folder ({words})",
        "split": f"{target / 'train' / 'index.npz'}: cannot remove ({words})",  # --overwrite of an old output
    }[case]
    with _Unwritable(locked):
        code, _, err = cli("shard", data_dir / "ena24-small" / "labels.csv", target, "--overwrite", "--size", "48",
                           "--quiet")
    assert code == 1 and expected in one_error_line(err, "shard")
    assert not _temporaries(tmp_path)


# --- eval --train-counts manifest.json ---------------------------------------------------------------------


def test_eval_train_counts_accepts_a_manifest_or_says_what_is_expected(ena24, tmp_path, cli, data_dir):
    predictions = tmp_path / "predictions.csv"
    predictions.write_text("true,predicted\nChicken,Chicken\nGrey Fox,Chicken\n")
    for counts in (ena24.root / "manifest.json", ena24.root):
        code, out, err = cli("eval", "--predictions", predictions, "--out", tmp_path / "metrics", "--train-counts",
                             counts)
        assert code == 0, err
        per_class = (tmp_path / "metrics" / "per_class.csv").read_text()
        assert "Chicken" in per_class
    code, _, err = cli("eval", "--predictions", predictions, "--out", tmp_path / "m2", "--train-counts",
                       data_dir / "ena24-small" / "coco_annotations.json")
    message = one_error_line(err, "eval")
    assert code == 2 and "shard directory's manifest.json" in message and len(message) < 400


# --- bad flag values: one rule per flag, checked before any work --------------------------------------------


@pytest.mark.parametrize("args, named", [
    (("--seed", "-1"), "--seed -1"),
    (("--split", "nan,0,1"), "--split nan"),
    (("--split", "0.8,0.1"), "--split 0.8,0.1"),
    (("--workers", "0"), "--workers 0"),
    (("--workers", "-3"), "--workers -3"),
    (("--workers", "two"), "--workers"),
    (("--size", "8"), "--size 8"),
    (("--quality", "101"), "--quality 101"),
    (("--shard-size", "0"), "--shard-size 0"),
    (("--keep-fraction", "zebra=0.1,Zebra=0.2"), "'Zebra' is given twice"),
    (("--keep-fraction", "human=0.5", "--drop-classes", "human"), "also in --drop-classes"),
    (("--group-by", "camera"), "--group-by camera"),
])
def test_bad_shard_flags_are_exit_2_before_any_work(tmp_path, cli, args, named):
    # The source does not exist: a flag is judged before the source is even looked at.
    code, out, err = cli("shard", tmp_path / "no-such-source.csv", tmp_path / "out", *args)
    assert code == 2 and named in one_error_line(err, "shard") and out == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, args, named", [
    ("plan", ("--sampling", "none", "--list", "--world-size", "0"), "--world-size 0"),
    ("plan", ("--sampling", "none", "--list", "--rank", "2", "--world-size", "2"), "--rank 2"),
    ("plan", ("--sampling", "none", "--list", "--epoch", "-1"), "must be >= 0"),
    ("plan", ("--sampling", "balanced:0"), "balanced"),
    ("plan", ("--sampling", "none", "--epoch", "1"), "--epoch only apply with --list"),
    ("verify", (), "not a shard directory"),
])
def test_bad_plan_and_verify_arguments_are_exit_2(ena24, tmp_path, cli, command, args, named):
    source = ena24.root if command == "plan" else tmp_path / "missing"
    code, out, err = cli(command, source, *args)
    assert code == 2 and named in one_error_line(err, command) and out == ""
