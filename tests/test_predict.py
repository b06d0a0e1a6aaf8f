"""predict for the camera-trap workflow: detector crops, MegaDetector JSON (checked against the format's own
description), Camtrap DP observations, CSV with awkward class names, and per-sequence pooling."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from camtrap_fast.errors import UserError
from camtrap_fast.predict import writers
from camtrap_fast.predict.classify import Classified
from camtrap_fast.predict.items import Item
from camtrap_fast.predict.sequences import burst_ids, pooled

AWKWARD = ['Odocoileus virginianus, "white-tailed" deer', "fox; grey", "bear", "crow,", "skunk;;", "chicken", "opossum"]


# --- a validator written from the MegaDetector batch-output format's description (format 1.x) -----------------


def validate_md_json(data: dict, top_k: int) -> int:
    """Raise AssertionError unless `data` is valid MegaDetector output with classifications; returns how many
    detections carry classifications."""
    assert isinstance(data.get("images"), list) and isinstance(data.get("detection_categories"), dict)
    assert isinstance(data.get("info"), dict) and str(data["info"].get("format_version", "1")).startswith("1")
    categories = data["classification_categories"]
    assert categories and all(isinstance(k, str) and k.isdigit() and isinstance(v, str) for k, v in categories.items())
    classified = 0
    for image in data["images"]:
        assert isinstance(image["file"], str) and image["file"]
        for detection in image.get("detections") or []:
            assert str(detection["category"]) in data["detection_categories"]
            assert 0 <= detection["conf"] <= 1
            x, y, w, h = detection["bbox"]
            assert 0 <= x <= 1 and 0 <= y <= 1 and 0 <= w <= 1 and 0 <= h <= 1 and x + w <= 1 + 1e-6
            if "classifications" in detection:
                pairs = detection["classifications"]
                assert 1 <= len(pairs) <= top_k
                assert all(isinstance(c, str) and c in categories and 0 <= p <= 1 for c, p in pairs)
                assert [p for _, p in pairs] == sorted((p for _, p in pairs), reverse=True)
                classified += 1
    return classified


# --- writers, without a model -----------------------------------------------------------------------------------


def results(probabilities) -> list[Classified]:
    items = [Item("/p/a.jpg", "a.jpg", 0, (0.1, 0.2, 0.3, 0.4), 0.9, "animal"), Item("/p/b.jpg", "b.jpg"),
             Item("/p/c.jpg", "c.jpg", not_classified="no detection >= 0.2")]
    probs = [np.asarray(p, dtype=np.float32) for p in probabilities]
    return [Classified(items[0], probs[0]), Classified(items[1], probs[1]), Classified(items[2], None, "no detection >= 0.2")]


def test_csv_keeps_awkward_class_names_parseable(tmp_path):
    classes = AWKWARD[:3]
    rows = results([[0.2, 0.7, 0.1], [0.5, 0.2, 0.3]])
    writers.write_csv(tmp_path / "p.csv", rows, classes, 3, ["s1", "s1", "s2"], pooled(rows, ["s1", "s1", "s2"]))
    with open(tmp_path / "p.csv", newline="") as f:
        read = list(csv.DictReader(f))
    assert [r["class_1"] for r in read[:2]] == ["fox; grey", AWKWARD[0]]  # exactly as named, commas and quotes
    assert read[0]["class_2"] == AWKWARD[0] and read[0]["probability_1"] == "0.7000"
    assert read[0]["bbox_x"] == "0.1" and read[0]["detection"] == "0" and read[1]["detection"] == ""
    assert read[0]["sequence"] == read[1]["sequence"] == "s1" and read[0]["sequence_class"] == "fox; grey"  # 0.45 > 0.35
    assert read[2]["error"] == "no detection >= 0.2" and read[2]["class_1"] == "" and read[2]["sequence_class"] == ""


def test_format_comes_from_out_unless_given(tmp_path):
    assert writers.choose_format(Path("x.csv"), None) == "csv" and writers.choose_format(Path("-"), None) == "csv"
    assert writers.choose_format(Path("x.json"), None) == "md-json"
    assert writers.choose_format(Path("pkg/datapackage.json"), None) == "camtrap-dp"
    assert writers.choose_format(tmp_path, "camtrap-dp") == "camtrap-dp"
    with pytest.raises(UserError, match="is a folder"):
        writers.choose_format(tmp_path, None)
    with pytest.raises(UserError, match="cannot tell the format"):
        writers.choose_format(Path("x.xlsx"), None)


def test_camtrap_dp_has_the_standards_columns_and_machine_rows(tmp_path, data_dir):
    classes = ["Vulpes vulpes", "blank", "human"]
    rows = results([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2]])
    written = writers.write_camtrap_dp(tmp_path / "pkg", rows, classes, Path("runs/x"), ["e1", "e1", "e2"],
                                       pooled(rows, ["e1", "e1", "e2"]))
    observations = written.observations
    assert written.untimed_photos == 2  # /p/a.jpg and /p/b.jpg have no capture time; /p/c.jpg was not classified
    with open(data_dir / "camtrap-dp-example" / "observations.csv", newline="") as f:
        standard = next(csv.reader(f))
    with open(observations, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == standard == list(writers.OBSERVATION_COLUMNS)
        read = list(reader)
    media = [r for r in read if r["observationLevel"] == "media"]
    assert [(r["observationType"], r["scientificName"]) for r in media] == [("animal", "Vulpes vulpes"), ("blank", "")]
    assert all(r["classificationMethod"] == "machine" and r["classifiedBy"].startswith("camtrap-fast ") for r in read)
    assert media[0]["bboxX"] == "0.1" and media[0]["bboxHeight"] == "0.4" and media[0]["eventID"] == "e1"
    events = [r for r in read if r["observationLevel"] == "event"]
    assert [(r["eventID"], r["scientificName"]) for r in events] == [("e1", "Vulpes vulpes")]  # e2: nothing classified
    package = json.loads((tmp_path / "pkg" / "datapackage.json").read_text())
    assert package["profile"].endswith("camtrap-dp-profile.json")
    assert [r["path"] for r in package["resources"]] == ["observations.csv"]


def test_bursts_group_consecutive_frames_by_exif_time(data_dir):
    folder = data_dir / "serengeti-samples" / "sequence-d04"
    items = [Item(str(p), p.name) for p in sorted(folder.iterdir()) if p.suffix == ".JPG"]
    ids = burst_ids(items, burst_seconds=10)
    assert ids == ["burst:S1_D04_R6_PICT0020.JPG"] * 2 + ["burst:S1_D04_R6_PICT0129.JPG"] * 2 + \
        ["burst:S1_D04_R6_PICT0221.JPG"] * 3 + ["burst:S1_D04_R6_PICT0275.JPG"]
    assert len(set(burst_ids(items, burst_seconds=0))) == 6  # same-second frames stay together
    no_time = [Item(str(data_dir / "ena24-small" / "2480.jpg"), "2480.jpg")]
    assert burst_ids(no_time, 10) == ["frame:2480.jpg"]


# --- end to end: a run trained on MegaDetector crops ------------------------------------------------------------


@pytest.fixture(scope="module")
def crop_run(tmp_path_factory, data_dir):
    """21 ENA24 photos (class names with commas, quotes and semicolons) sharded as MegaDetector crops; 1 epoch."""
    from camtrap_fast.cli import main

    root = tmp_path_factory.mktemp("crops")
    ena = data_dir / "ena24-small"
    with open(ena / "labels.csv", newline="") as f:
        original = list(csv.DictReader(f))
    names = dict(zip(sorted({r["label"] for r in original}), AWKWARD))
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath", "label"])
        writer.writerows([r["filepath"], names[r["label"]]] for r in original)  # relative, as MD names them
    shards = root / "shards"
    assert main(["shard", str(root / "labels.csv"), str(shards), "--image-root", str(ena), "--detections",
                 str(ena / "md_annotations.json"), "--size", "40", "--split", "0.34,0.33,0.33", "--quiet"]) == 0
    run = root / "run"
    assert main(["train", str(shards), "--out", str(run), "--epochs", "1", "--image-size", "32", "--batch-size", "8",
                 "--workers", "0", "--backend", "pil", "--device", "cpu", "--quiet"]) == 0
    return run


@pytest.mark.slow
def test_predict_md_json_on_real_detections_is_valid_and_keeps_the_input(crop_run, tmp_path, data_dir, cli):
    ena = data_dir / "ena24-small"
    out = tmp_path / "classified.json"
    code, printed, err = cli("predict", crop_run, ena, "--detections", ena / "md_annotations.json", "--out", out,
                             "--top-k", "3")
    assert code == 0, err
    assert "classified 21 of 21 detections and images" in printed and "(md-json)" in printed
    data, original = json.loads(out.read_text()), json.loads((ena / "md_annotations.json").read_text())
    assert validate_md_json(data, top_k=3) == 21
    assert set(data["classification_categories"].values()) == set(AWKWARD)
    assert data["info"]["classifier"].startswith("camtrap-fast") and data["info"]["format_version"] == "1.4"
    for ours, theirs in zip(data["images"], original["images"]):  # everything but the classifications is kept
        assert ours["file"] == theirs["file"]
        for a, b in zip(ours["detections"], theirs["detections"]):
            assert {k: v for k, v in a.items() if k != "classifications"} == \
                   {k: v for k, v in b.items() if k != "classifications"}
    assert {k: v for k, v in data["info"].items() if not k.startswith("classifi")} == \
           {k: v for k, v in original["info"].items() if not k.startswith("classifi")}


@pytest.mark.slow
def test_predict_detections_csv_and_camtrap_dp(crop_run, tmp_path, data_dir, cli):
    ena = data_dir / "ena24-small"
    edited = json.loads((ena / "md_annotations.json").read_text())
    edited["images"][0]["detections"][0]["conf"] = 0.05  # below the run's 0.2: not classified, listed
    edited["images"][1]["failure"] = "Failure image access"
    (tmp_path / "md.json").write_text(json.dumps(edited))
    code, printed, err = cli("predict", crop_run, ena, "--detections", tmp_path / "md.json", "--out",
                             tmp_path / "p.csv")
    assert code == 0 and "classified 19 of 21" in printed and "2 images without a qualifying detection" in printed
    with open(tmp_path / "p.csv", newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert rows[edited["images"][0]["file"]]["error"] == "no detection >= 0.2"
    assert rows[edited["images"][1]["file"]]["error"] == "detector failure: Failure image access"
    assert all(r["class_1"] in AWKWARD for r in rows.values() if not r["error"])
    code, _, err = cli("predict", crop_run, ena, "--detections", tmp_path / "md.json", "--out",
                       tmp_path / "pkg" / "datapackage.json")
    assert code == 0, err
    with open(tmp_path / "pkg" / "observations.csv", newline="") as f:
        observations = list(csv.DictReader(f))
    # 20 of ENA24's 21 photos carry no EXIF capture time: the empty eventStart the standard requires is said, in
    # one line that counts the classified photos without one
    from camtrap_fast.predict.sequences import capture_time

    assert all((ena / r["mediaID"]).is_file() for r in observations)
    untimed = {r["mediaID"] for r in observations if capture_time(str(ena / r["mediaID"])) is None}
    assert untimed and {r["mediaID"] for r in observations if not r["eventStart"]} == untimed
    warned = [line for line in err.splitlines() if "no capture time" in line]
    assert warned == [warned[0]] and warned[0].startswith(f"warning: {len(untimed)} classified photos have no "
                                                          "capture time") and "eventStart" in warned[0]
    assert len(observations) == 19 and all(r["bboxWidth"] for r in observations)


@pytest.mark.slow
def test_predict_uses_the_runs_crop_rule(crop_run, tmp_path, data_dir, monkeypatch):
    from camtrap_fast.predict import classify as classify_module
    from camtrap_fast.shards.encode import EncodeConfig

    seen = []
    real = classify_module._crops
    monkeypatch.setattr(classify_module, "_crops", lambda path, bboxes, encode: seen.append(encode) or
                        real(path, bboxes, encode))
    preprocessing = json.loads((crop_run / "preprocessing.json").read_text())
    assert preprocessing["crops"]["mode"] == "detections" and preprocessing["crops"]["padding"] == 0.1
    from camtrap_fast.cli import main

    assert main(["predict", str(crop_run), str(data_dir / "ena24-small"), "--detections",
                 str(data_dir / "ena24-small" / "md_annotations.json"), "--out", str(tmp_path / "p.csv")]) == 0
    assert seen and all(e == EncodeConfig(size=40, quality=90, crop_padding=0.1) for e in seen)


@pytest.mark.slow
def test_predict_aggregates_bursts(crop_run, tmp_path, data_dir, cli):
    folder = tmp_path / "photos"
    shutil.copytree(data_dir / "serengeti-samples" / "sequence-d04", folder)
    code, printed, err = cli("predict", crop_run, folder, "--out", tmp_path / "p.csv", "--aggregate", "sequence")
    assert code == 0 and "4 sequences pooled" in printed, err
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_sequence: dict[str, list] = {}
    for row in rows:
        by_sequence.setdefault(row["sequence"], []).append(row)
    assert sorted(len(v) for v in by_sequence.values()) == [1, 2, 2, 3]
    for members in by_sequence.values():
        assert len({r["sequence_class"] for r in members}) == 1 and members[0]["sequence_class"] in AWKWARD


@pytest.mark.slow
def test_predict_into_a_camtrap_dp_package_names_its_media_and_events(crop_run, tmp_path, data_dir, cli):
    package = data_dir / "camtrap-dp-example"
    out = tmp_path / "predictions" / "datapackage.json"
    code, printed, err = cli("predict", crop_run, package / "media", "--aggregate", "sequence", "--sequences",
                             package, "--out", out)
    assert code == 0 and "classified 10 of 10 files" in printed and "1 sequences pooled" in printed, err
    assert "no capture time" not in err  # every photo has its package timestamp
    with open(package / "media.csv", newline="") as f:
        media = {row["fileName"]: row for row in csv.DictReader(f)}
    with open(out.parent / "observations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    frames = [r for r in rows if r["observationLevel"] == "media"]
    local = {name: row for name, row in media.items() if (package / "media" / name).exists()}
    assert {r["mediaID"] for r in frames} == {row["mediaID"] for row in local.values()}
    assert all(r["deploymentID"] == "62c200a9" and r["eventID"] == "7245a2aa" for r in frames)
    assert {r["eventStart"] for r in frames} == {row["timestamp"] for row in local.values()}  # offsets kept
    (event,) = [r for r in rows if r["observationLevel"] == "event"]
    assert event["eventID"] == "7245a2aa" and event["eventStart"] < event["eventEnd"]


def test_md_json_without_detections_is_refused_before_any_work(tmp_path):
    from camtrap_fast.predict import PredictJob

    with pytest.raises(UserError, match="MegaDetector JSON holds classifications of detector boxes"):
        PredictJob(run=tmp_path, inputs=(tmp_path,), out=tmp_path / "x.json")
    with pytest.raises(UserError, match="give one folder"):
        PredictJob(run=tmp_path, inputs=(tmp_path, tmp_path), out=tmp_path / "x.csv", detections=tmp_path / "m.json")


def test_camtrap_dp_output_never_replaces_a_users_own_package(tmp_path, data_dir):
    from camtrap_fast.predict import PredictJob

    theirs = tmp_path / "theirs"
    shutil.copytree(data_dir / "camtrap-dp-example", theirs)
    before = {p.name: p.read_bytes() for p in theirs.iterdir() if p.is_file()}
    for out in (theirs / "datapackage.json", theirs):
        with pytest.raises(UserError, match=r"theirs/datapackage.json: .*not written by camtrap-fast.*another --out"):
            PredictJob(run=tmp_path, inputs=(tmp_path,), out=out, format="camtrap-dp")
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "observations.csv").write_text("observationID\nmine\n")
    with pytest.raises(UserError, match=r"loose/observations.csv: not written by camtrap-fast.*another --out"):
        PredictJob(run=tmp_path, inputs=(tmp_path,), out=loose / "datapackage.json")
    with pytest.raises(UserError, match="not written by camtrap-fast"):  # the writer refuses too, whoever calls it
        writers.write_camtrap_dp(theirs, results([[0.8, 0.2, 0.0], [0.1, 0.9, 0.0]]), ["a", "b", "c"], Path("r"))
    assert {p.name: p.read_bytes() for p in theirs.iterdir() if p.is_file()} == before
    assert (loose / "observations.csv").read_text() == "observationID\nmine\n"
    ours = tmp_path / "ours"  # our own earlier output is rewritten
    writers.write_camtrap_dp(ours, results([[0.8, 0.2, 0.0], [0.1, 0.9, 0.0]]), ["a", "b", "c"], Path("r"))
    PredictJob(run=tmp_path, inputs=(tmp_path,), out=ours / "datapackage.json")
    writers.write_camtrap_dp(ours, results([[0.8, 0.2, 0.0], [0.1, 0.9, 0.0]]), ["a", "b", "c"], Path("r"))
    with pytest.raises(UserError, match="writes a folder"):  # an existing file, refused before any work
        PredictJob(run=tmp_path, inputs=(tmp_path,), out=loose / "observations.csv", format="camtrap-dp")


def test_md_json_drops_another_classifiers_descriptions_and_metadata(tmp_path):
    detections = {
        "info": {"format_version": "1.4", "detector": "md_v5a", "classifier": "speciesnet",
                 "classifier_metadata": {"classes": ["cat", "dog"]}},
        "detection_categories": {"1": "animal"},
        "classification_categories": {"0": "cat", "1": "dog"},
        "classification_category_descriptions": {"0": "mammalia;carnivora;felidae;felis;catus", "1": "canis"},
        "images": [{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4],
                                                     "classifications": [["1", 0.8]]}]}]}
    (tmp_path / "md.json").write_text(json.dumps(detections))
    rows = results([[0.2, 0.7, 0.1], [0.5, 0.2, 0.3]])
    writers.write_md_json(tmp_path / "out.json", tmp_path / "md.json", rows, ["bear", "fox", "crow"], 2, Path("r"))
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["classification_categories"] == {"0": "bear", "1": "fox", "2": "crow"}
    assert "classification_category_descriptions" not in data and "classifier_metadata" not in data["info"]
    assert data["info"]["detector"] == "md_v5a" and data["images"][0]["detections"][0]["classifications"][0][0] == "1"
    assert validate_md_json(data, top_k=2) == 1


@pytest.mark.slow
def test_a_photo_given_twice_is_classified_once(crop_run, tmp_path, data_dir, cli):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("ocelot.jpg", "blank.jpg"):
        shutil.copy(data_dir / "edge-cases" / name, folder)
    code, printed, err = cli("predict", crop_run, folder / "ocelot.jpg", folder, folder / "ocelot.jpg",
                             "--out", tmp_path / "p.csv")
    assert code == 0 and "classified 2 of 2 files" in printed, err
    assert err.strip() == "warning: 1 photos given more than once, classified once"
    with open(tmp_path / "p.csv", newline="") as f:
        assert [r["file"] for r in csv.DictReader(f)] == [str(folder / "ocelot.jpg"), str(folder / "blank.jpg")]
    code, printed, err = cli("predict", crop_run, folder, "--out", tmp_path / "p.csv")
    assert code == 0 and "classified 2 of 2 files" in printed and err == ""


@pytest.mark.slow
def test_sequences_apart_from_their_photos_say_how_many_are_unmatched(crop_run, tmp_path, data_dir, cli):
    photos = tmp_path / "photos"
    shutil.copytree(data_dir / "serengeti-samples" / "sequence-d04", photos)
    names = sorted(p.name for p in photos.iterdir())
    coco = {"images": [{"id": n, "file_name": name, "seq_id": f"s{n // 3}"} for n, name in enumerate(names[:-1])],
            "annotations": [], "categories": [{"id": 0, "name": "empty"}]}  # the last photo is not listed
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "coco.json").write_text(json.dumps(coco))
    args = ("predict", crop_run, photos, "--out", tmp_path / "p.csv", "--aggregate", "sequence", "--sequences",
            tmp_path / "meta" / "coco.json")
    code, printed, err = cli(*args)
    assert code == 0 and "8 sequences pooled" in printed, err
    assert err.startswith(f"warning: 8 of 8 photos not found in {tmp_path / 'meta' / 'coco.json'}; they are their "
                          "own sequences") and "--image-root" in err and len(err.strip().splitlines()) == 1
    code, printed, err = cli(*args, "--image-root", photos)
    assert code == 0 and "4 sequences pooled" in printed, err  # s0, s1, s2 and the unlisted photo
    assert err.strip() == f"warning: 1 of 8 photos not found in {tmp_path / 'meta' / 'coco.json'}; they are their " \
                          "own sequences"
    with open(tmp_path / "p.csv", newline="") as f:
        assert [r["sequence"] for r in csv.DictReader(f)] == ["s0"] * 3 + ["s1"] * 3 + ["s2", f"frame:{photos / names[-1]}"]


@pytest.mark.slow
def test_bad_sequences_and_camtrap_dp_targets_are_refused_before_any_photo_is_classified(crop_run, tmp_path, data_dir,
                                                                                         cli, monkeypatch):
    from camtrap_fast.predict import job

    monkeypatch.setattr(job, "classify", lambda *a, **k: pytest.fail("classified before the arguments were checked"))
    photo = data_dir / "edge-cases" / "ocelot.jpg"
    (tmp_path / "no-seq.json").write_text(json.dumps({"images": [{"id": 1, "file_name": str(photo)}],
                                                      "annotations": [], "categories": []}))
    (tmp_path / "taken.csv").write_text("mine\n")
    sequence = ("--aggregate", "sequence", "--sequences")
    for flags, message in [((*sequence, tmp_path / "missing.json"), "missing.json: no such file"),
                           ((*sequence, photo), "ocelot.jpg: unknown source format"),
                           ((*sequence, tmp_path / "no-seq.json"), "no-seq.json: names no sequences"),
                           (("--format", "camtrap-dp"), "taken.csv: --format camtrap-dp writes a folder")]:
        code, _, err = cli("predict", crop_run, photo, "--out", tmp_path / "taken.csv", *flags)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert (tmp_path / "taken.csv").read_text() == "mine\n"
