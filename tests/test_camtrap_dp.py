"""Camtrap DP ingest on the standard's own example package: labels, events in UTC, deployments, remote media."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from camtrap_fast.errors import UserError
from camtrap_fast.ingest import load_records
from camtrap_fast.ingest.filters import FilterConfig, apply_filters

EXAMPLE_LABELS = {  # primary label per media, counted by hand from observations.csv
    "Anas platyrhynchos": 147, "blank": 112, "human": 33, "Rattus norvegicus": 28, "Ardea": 20, "vehicle": 20,
    "Anas strepera": 16, "unknown": 11, "Aves": 11, "Martes foina": 10, "Mustela putorius": 9, "Vulpes vulpes": 6,
}


@pytest.fixture(scope="module")
def example(data_dir) -> Path:
    return data_dir / "camtrap-dp-example"


def _by_media(records) -> dict[str, object]:
    return {Path(r.relpath).name if not r.relpath.startswith("http") else r.relpath.split("/")[-2][:8]: r
            for r in records}


def test_example_package_labels_locations_sequences(example):
    fmt, records = load_records(example)
    assert fmt == "camtrap-dp" and len(records) == 423
    assert load_records(example / "datapackage.json") == (fmt, records)
    assert Counter(r.label for r in records) == EXAMPLE_LABELS
    # "Homo sapiens" observations are typed human: the class is the type, so --drop-classes human works
    assert not any("Homo sapiens" in r.labels for r in records)
    # the multi-species rule: most observations first (a heron with two mallards), ties in file order
    multi = [r for r in records if len(r.labels) > 1]
    assert len(multi) == 40
    assert Counter(r.labels for r in multi) == {("Anas platyrhynchos", "Ardea cinerea"): 30,
                                               ("Anas strepera", "Anas platyrhynchos"): 10}
    assert {r.location for r in records} == {"00a2c20d", "29b7d356", "577b543a", "62c200a9"}
    assert len({r.seq_id for r in records}) == 34 and all(r.seq_id for r in records)
    local = [r for r in records if not r.path.startswith("https://")]
    assert len(local) == 10 and all(Path(r.path).is_file() for r in local)
    assert {(r.relpath.split("/")[0], r.label, r.seq_id, r.location) for r in local} == {
        ("media", "Ardea", "7245a2aa", "62c200a9")}
    assert local[0].datetime == "2021-04-11T20:43:09+01:00"
    kept, dropped = apply_filters(records, FilterConfig(drop_classes=("blank", "human")))
    assert len(dropped) == 112 + 33 and {r.reason for r in dropped} == {"dropped class"} and len(kept) == 278


def test_media_level_labels_win_over_the_event_around_them(example):
    _, records = load_records(example)
    by_id = {}
    for r in records:
        by_id[r.path.split("/assets/")[1][:8] if "/assets/" in r.path else Path(r.path).name] = r
    # event 976129e2 is a polecat; its last seven frames are media-level blank (the animal had left)
    assert by_id["a8848796"].labels == ("Mustela putorius",)
    assert by_id["27e8fb0c"].labels == ("blank",) and by_id["27e8fb0c"].seq_id == "976129e2"


def _package_copy(example: Path, out: Path, keep=lambda row: True, edit=None) -> Path:
    """The example's tables (text only; the photos are linked, not copied) with observations filtered/edited."""
    out.mkdir()
    for name in ("datapackage.json", "deployments.csv", "media.csv"):
        shutil.copyfile(example / name, out / name)
    (out / "media").symlink_to(example / "media")
    with open(example / "observations.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [row for row in reader if keep(row)]
        fields = reader.fieldnames
    if edit:
        rows = [edit(dict(row)) for row in rows]
    with open(out / "observations.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_event_level_observations_label_media_by_utc_time(example, tmp_path):
    package = _package_copy(example, tmp_path / "events", keep=lambda row: row["observationLevel"] == "event")
    _, records = load_records(package)
    by_id = {r.path.split("/assets/")[1][:8]: r for r in records if "/assets/" in r.path}
    # Media times carry +02:00 / +01:00, events are in UTC: 00:31:51+02:00 is 22:31:51Z the day before.
    polecat = by_id["a8848796"]
    assert polecat.datetime == "2020-06-20T00:31:51+02:00"
    assert polecat.labels == ("Mustela putorius",) and polecat.seq_id == "976129e2"
    assert by_id["27e8fb0c"].labels == ("Mustela putorius",)  # no media-level truth left: the event's label
    # Every activity-triggered media lies in one of the 31 events; the 3 time-lapse frames lie in none. Those
    # and the 40 frames of the one "unclassified" event (media-level: 33 human, 7 blank) have no label left.
    unlabelled = [r for r in records if not r.label]
    assert Counter(r.seq_id for r in unlabelled) == {None: 3, "99880973": 40}
    assert len({r.seq_id for r in records if r.seq_id}) == 31
    # event 79204343 has one heron and two mallard observations: every media of it is multi-species
    heron = [r for r in records if r.seq_id == "79204343"]
    assert len(heron) == 30 and all(r.labels == ("Anas platyrhynchos", "Ardea cinerea") for r in heron)
    assert sum(bool(r.label) for r in records) == 380


def test_remote_media_are_found_under_image_root_by_file_name(example, tmp_path, data_dir):
    root = tmp_path / "downloads"
    (root / "00a2c20d").mkdir(parents=True)
    photo = data_dir / "ena24-small" / "2480.jpg"
    (root / "00a2c20d" / "20200709093328-RCNX0001.JPG").symlink_to(photo)  # DEPLOYMENT/FILE
    (root / "20200709093328-RCNX0002.JPG").symlink_to(photo)  # FILE
    _, records = load_records(example, image_root=root)
    found = [r for r in records if r.path.startswith(str(root))]
    assert sorted(r.relpath for r in found) == ["00a2c20d/20200709093328-RCNX0001.JPG", "20200709093328-RCNX0002.JPG"]
    assert sum(r.path.startswith("https://") for r in records) == 411
    assert sum(r.path.startswith(str(example)) for r in records) == 10  # relative paths stay in the package


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize("damage, message", [
    (lambda p: _replace_in(p / "media.csv", "2020-05-30T04:57:37+02:00", "2020-05-30T04:57:37"),
     r"media.csv:2: timestamp '2020-05-30T04:57:37' has no UTC offset"),
    (lambda p: _replace_in(p / "media.csv", "2020-05-30T04:57:37+02:00", "30/05/2020"),
     r"media.csv:2: timestamp '30/05/2020' is not an ISO 8601"),
    (lambda p: _replace_in(p / "observations.csv", ",07840dcc,", ",nosuchid,"),
     r"observations.csv:3: media-level observation 07840dcc_1 names mediaID 'nosuchid'"),
    (lambda p: _replace_in(p / "observations.csv", "2020-05-30T02:57:44Z", "2020-05-30T01:00:00Z"),
     r"observations.csv:2: eventEnd .* is before eventStart"),
    (lambda p: _replace_in(p / "observations.csv", "0.32325,0.46962,0.2744,0.25189", "0.32325,0.46962,-0.2,0.25"),
     r"observations.csv:\d+: bad box \(bbox .* negative width"),
    (lambda p: _replace_in(p / "observations.csv", "0.32325,0.46962,0.2744,0.25189", "0.32325,,0.2744,0.25189"),
     r"observations.csv:\d+: bad box \(some of bboxX"),
    (lambda p: _replace_in(p / "media.csv", "mediaID,deploymentID", "mediaId,deploymentID"),
     r"media.csv: missing column\(s\) mediaID"),
    (lambda p: _replace_in(p / "media.csv", ",00a2c20d,activityDetection,2020-05-30T04:57:37", ",nodeploy,activityDetection,2020-05-30T04:57:37"),
     r"media.csv:2: deploymentID 'nodeploy' is not in deployments.csv"),
    (lambda p: _replace_in(p / "datapackage.json", '"name": "observations"', '"name": "obs"'),
     r"datapackage.json: no observations resource"),
    (lambda p: (p / "deployments.csv").unlink(), r"deployments.csv: not found"),
])
def test_damaged_package_is_a_one_line_user_error(example, tmp_path, damage, message):
    package = _package_copy(example, tmp_path / "pkg")
    damage(package)
    with pytest.raises(UserError, match=message) as error:
        load_records(package)
    assert "\n" not in str(error.value)


def test_datapackage_without_resources_is_refused(tmp_path):
    (tmp_path / "datapackage.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(UserError, match="no 'resources' list"):
        load_records(tmp_path)
