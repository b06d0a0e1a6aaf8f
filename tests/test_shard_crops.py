"""`shard --detections` and `--crops annotations` end to end on real files: samples, pixels, keys, splits, reruns."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camtrap_fast.shards.crops import crop_window
from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.shards.reader import ShardReader


def _samples(out: Path) -> dict[str, dict]:
    """key -> {"json", "jpg" (PIL image), "split"} for every sample in every shard."""
    found = {}
    manifest = load_manifest(out)
    for split, info in manifest.splits.items():
        for shard in manifest.shard_paths(split) if info.samples else ():
            with tarfile.open(shard) as tar:
                for member in tar.getmembers():
                    key, ext = member.name.split(".", 1)
                    entry = found.setdefault(key, {"split": split})
                    data = tar.extractfile(member).read()
                    entry[ext] = json.loads(data) if ext == "json" else Image.open(io.BytesIO(data)) if ext == "jpg" else data
    return found


def _rejected(out: Path) -> dict[str, tuple[str, str]]:
    with open(out / "rejected.csv", newline="") as f:
        return {Path(row["path"]).name: (row["reason"], row["detail"]) for row in csv.DictReader(f)}


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


@pytest.fixture(scope="module")
def ena24_md(tmp_path_factory, data_dir):
    from camtrap_fast.cli import main

    out = tmp_path_factory.mktemp("md") / "ena24"
    ena = data_dir / "ena24-small"
    assert main(["shard", str(ena / "labels.csv"), str(out), "--detections", str(ena / "md_annotations.json"),
                 "--split", "0.34,0.33,0.33", "--size", "128", "--quiet"]) == 0
    return out


def test_ena24_labels_with_megadetector_output_give_one_crop_per_detection(ena24_md, data_dir):
    manifest = load_manifest(ena24_md)
    assert sum(info.samples for info in manifest.splits.values()) == 21  # all 21 detections are >= 0.2
    assert manifest.crops == {"mode": "detections", "padding": 0.1, "empty_class": None, "min_conf": 0.2,
                              "categories": ["animal"],
                              "detections": str(data_dir / "ena24-small" / "md_annotations.json")}
    samples = _samples(ena24_md)
    assert len(samples) == 21 and all(key.endswith("_d0") for key in samples)
    meta = samples["2480_d0"]["json"]
    assert meta["source"] == "2480.jpg" and meta["label"] == "Virginia Opossum"
    assert meta["crop"] == {"from": "detection", "index": 0, "bbox": [0.35, 0.35, 0.3, 0.3], "conf": 0.926,
                            "category": "animal", "window": [614, 194, 1305, 885], "frame": [1920, 1080]}
    assert samples["2480_d0"]["jpg"].size == (128, 128)
    # every crop is the box region of its source photo (decoded at full resolution here; JPEG and DCT
    # scaling leave 1.4-6 of 255 on these photos), and clearly not that region moved by a tenth
    for key, sample in samples.items():
        photo = Image.open(data_dir / "ena24-small" / sample["json"]["source"]).convert("RGB")
        left, top, right, bottom = window = tuple(sample["json"]["crop"]["window"])
        assert window == crop_window(sample["json"]["crop"]["bbox"], *photo.size)
        same = _diff(sample["jpg"], photo.crop(window).resize(sample["jpg"].size, Image.Resampling.BICUBIC))
        step = (right - left) // 10
        moved = photo.crop((left + step, top, right + step, bottom)).resize(sample["jpg"].size, Image.Resampling.BICUBIC)
        assert same < 7 and _diff(sample["jpg"], moved) > 2 * same, key


def test_index_knows_each_crops_source_image(ena24_md):
    manifest = load_manifest(ena24_md)
    for split in ("train", "val", "test"):
        index = manifest.load_index(split)
        assert [s + "_d0" for s in (Path(p).stem for p in index.sources())] == index.keys()
        assert index.sequences() == [""] * len(index)  # the CSV has no sequences
        with ShardReader(index, manifest.root) as reader:
            assert Image.open(io.BytesIO(reader.read(0))).size == (128, 128)


def test_coco_source_with_the_same_detections_gives_the_same_tars(ena24_md, data_dir, tmp_path, cli):
    ena = data_dir / "ena24-small"
    code, _, err = cli("shard", ena / "coco_annotations.json", tmp_path / "coco", "--detections",
                       ena / "md_annotations.json", "--split", "0.34,0.33,0.33", "--size", "128", "--quiet")
    assert code == 0, err
    read = lambda out: {p.relative_to(out): p.read_bytes() for p in sorted(out.glob("*/shard-*.tar"))}  # noqa: E731
    assert read(tmp_path / "coco") == read(ena24_md)


def test_rerun_with_another_threshold_or_detections_file_does_not_resume(ena24_md, data_dir, tmp_path, cli):
    ena = data_dir / "ena24-small"
    out = tmp_path / "out"
    args = [ena / "labels.csv", out, "--detections", ena / "md_annotations.json", "--size", "64", "--quiet"]
    assert cli("shard", *args)[0] == 0
    code, _, err = cli("shard", *args, "--min-detection-conf", "0.9")
    assert code == 2 and "--overwrite" in err
    assert cli("shard", *args, "--min-detection-conf", "0.9", "--overwrite")[0] == 0
    manifest = load_manifest(out)
    assert sum(i.samples for i in manifest.splits.values()) == 13 and manifest.rejected == 8
    assert set(r[0] for r in _rejected(out).values()) == {"no detection"}
    # the same threshold but other detections (same file name): the file's content is in the fingerprint
    edited = tmp_path / "md_annotations.json"
    data = json.loads((ena / "md_annotations.json").read_text())
    data["images"][0]["detections"][0]["bbox"] = [0.1, 0.1, 0.2, 0.2]
    edited.write_text(json.dumps(data))
    code, _, err = cli("shard", ena / "labels.csv", out, "--detections", edited, "--size", "64",
                       "--min-detection-conf", "0.9", "--quiet")
    assert code == 2 and "--overwrite" in err
    for flag in (["--crop-padding", "0.2"], ["--empty-class", "blank"], ["--detection-categories", "animal,person"]):
        code, _, err = cli("shard", *args, "--min-detection-conf", "0.9", *flag)
        assert code == 2 and "--overwrite" in err, flag


def test_empty_class_images_are_whole_frames(data_dir, tmp_path, cli):
    ena = data_dir / "ena24-small"
    out = tmp_path / "out"
    code, stdout, err = cli("shard", ena / "labels.csv", out, "--detections", ena / "md_annotations.json",
                            "--min-detection-conf", "0.9", "--empty-class", "blank", "--size", "64")
    assert code == 0, err
    assert "crops: 21 samples from 21 images (detector crops, and whole frames of blank)" in stdout
    samples = _samples(out)
    blank = {k: s for k, s in samples.items() if s["json"]["label"] == "blank"}
    assert len(blank) == 8 and not any(k.endswith("_d0") for k in blank)
    assert all("crop" not in s["json"] and min(s["jpg"].size) == 64 and s["jpg"].size[0] > 64 for s in blank.values())
    assert "blank" in load_manifest(out).classes


def test_exif_rotated_photos_with_boxes(data_dir, tmp_path, cli):
    """MegaDetector boxes refer to the displayed photo; the rotated and the upright copy crop alike."""
    root = tmp_path / "photos"
    (root / "elephant").mkdir(parents=True)
    for name in ("african_elephants.jpg", "african_elephants_with_exif_orientation.jpg"):
        (root / "elephant" / name).symlink_to(data_dir / "edge-cases" / name)
    md = tmp_path / "md.json"
    box = {"category": "1", "conf": 0.9, "bbox": [0.3, 0.2, 0.25, 0.35]}
    md.write_text(json.dumps({"detection_categories": {"1": "animal"}, "images": [
        {"file": "elephant/african_elephants.jpg", "detections": [box]},
        {"file": "elephant/african_elephants_with_exif_orientation.jpg", "detections": [box]}]}))
    code, _, err = cli("shard", root, tmp_path / "out", "--detections", md, "--size", "128", "--split", "1,0,0",
                       "--quiet")
    assert code == 0, err
    samples = _samples(tmp_path / "out")
    upright = samples["elephant_african_elephants_d0"]
    rotated = samples["elephant_african_elephants_with_exif_orientation_d0"]
    assert rotated["json"]["crop"]["frame"] == [2048, 1536] == upright["json"]["crop"]["frame"]
    assert rotated["json"]["crop"]["window"] == upright["json"]["crop"]["window"]
    assert _diff(rotated["jpg"], upright["jpg"]) < 4


def test_crops_of_one_image_and_one_sequence_stay_in_one_split(tmp_path, cli):
    from camtrap_fast.synth import SynthConfig, synthesize

    demo = synthesize(SynthConfig(tmp_path / "demo", scale=0.001, size=48, num_locations=3, detections=True))
    out = tmp_path / "out"
    code, _, err = cli("shard", demo.annotations_path, out, "--detections", demo.detections_path, "--size", "32",
                       "--quiet", "--workers", "2")
    assert code == 0, err
    manifest = load_manifest(out)
    by_source, by_sequence, samples = defaultdict(set), defaultdict(set), 0
    for split in ("train", "val", "test"):
        index = manifest.load_index(split)
        samples += len(index)
        for source, sequence in zip(index.sources(), index.sequences()):
            by_source[source].add(split)
            by_sequence[sequence].add(split)
    assert samples > len(by_source)  # herds: several crops of one photo
    assert all(len(s) == 1 for s in by_source.values()) and all(len(s) == 1 for s in by_sequence.values())
    assert "" not in by_sequence
    # every image is in a shard or rejected, every qualifying detection is a sample
    coco = json.loads(demo.annotations_path.read_text())
    rejected = _rejected(out)
    assert len(by_source) + len(rejected) == len(coco["images"])
    md = json.loads(demo.detections_path.read_text())
    qualifying = sum(1 for im in md["images"] if Path(im["file"]).name not in rejected
                     for d in im["detections"] if d["conf"] >= 0.2)
    assert samples == qualifying
    # the same bytes with one worker
    code, _, err = cli("shard", demo.annotations_path, tmp_path / "one", "--detections", demo.detections_path,
                       "--size", "32", "--quiet", "--workers", "1")
    assert code == 0, err
    for path in sorted(out.glob("*/*.*")):
        assert path.read_bytes() == (tmp_path / "one" / path.relative_to(out)).read_bytes(), path


def test_coco_boxes_as_crops(data_dir, tmp_path, cli):
    ena = data_dir / "ena24-small"
    out = tmp_path / "out"
    code, _, err = cli("shard", ena / "coco_annotations.json", out, "--crops", "annotations", "--size", "64", "--quiet")
    assert code == 0, err
    samples = _samples(out)
    assert len(samples) == 21 and all(key.endswith("_a0") for key in samples)
    opossum = samples["2480_a0"]["json"]  # COCO bbox [1, 11, 111, 10] px in a 1920 x 1080 photo
    assert opossum["crop"]["bbox"] == [round(1 / 1920, 6), round(11 / 1080, 6), round(111 / 1920, 6), round(10 / 1080, 6)]
    assert opossum["crop"]["window"] == [0, 0, 133, 133] and opossum["label"] == "Virginia Opossum"
    photo = Image.open(ena / "2480.jpg").convert("RGB")
    got = samples["2480_a0"]["jpg"]
    assert _diff(got, photo.crop((0, 0, 133, 133)).resize(got.size, Image.Resampling.BICUBIC)) < 4


def test_camtrap_dp_example_shards(data_dir, tmp_path, cli):
    example = data_dir / "camtrap-dp-example"
    code, stdout, err = cli("shard", example, tmp_path / "frames", "--drop-classes", "blank,human",
                            "--remote-media", "skip", "--quiet")
    assert code == 0, err
    with open(tmp_path / "frames" / "rejected.csv", newline="") as f:
        rejected = list(csv.DictReader(f))
    assert len(rejected) == 413 and {r["reason"] for r in rejected} == {"remote media (not downloaded)"}
    assert all(r["path"].startswith("https://multimedia.agouti.eu/assets/") for r in rejected)
    manifest = load_manifest(tmp_path / "frames")
    assert manifest.classes == ("Ardea",) and manifest.splits["train"].samples == 10  # one event: one split

    code, _, err = cli("shard", example / "datapackage.json", tmp_path / "crops", "--crops", "annotations",
                       "--size", "64", "--remote-media", "skip", "--quiet")
    assert code == 0, err
    samples = _samples(tmp_path / "crops")
    assert len(samples) == 10 and {s["json"]["label"] for s in samples.values()} == {"Ardea"}
    first = samples["media_20210531082538-RCNX0031_a0"]
    assert first["json"]["seq_id"] == "7245a2aa" and first["json"]["location"] == "62c200a9"
    assert first["json"]["crop"]["bbox"] == [0.35947, 0.61382, 0.32951, 0.31225]  # observations.csv bboxX..
    photo = Image.open(example / "media" / "20210531082538-RCNX0031.JPG").convert("RGB")
    window = tuple(first["json"]["crop"]["window"])
    assert window == crop_window([0.35947, 0.61382, 0.32951, 0.31225], *photo.size)
    assert _diff(first["jpg"], photo.crop(window).resize(first["jpg"].size, Image.Resampling.BICUBIC)) < 4
    index = load_manifest(tmp_path / "crops").load_index("train")
    assert set(index.sequences()) == {"7245a2aa"}
    # These boxes are real (a grey heron, white under the infrared flash): each crop holds 3.5-6 times the
    # photo's share of near-white pixels.
    for sample in samples.values():
        photo = np.asarray(Image.open(example / sample["json"]["source"]).convert("L"))
        crop = np.asarray(sample["jpg"].convert("L"))
        assert (crop > 200).mean() > 3 * (photo > 200).mean(), sample["json"]["source"]


def test_annotation_crops_drop_boxes_of_dropped_classes_and_reject_unboxed(data_dir, tmp_path, cli):
    ena = data_dir / "ena24-small"
    coco = json.loads((ena / "coco_annotations.json").read_text())
    coco["annotations"].append({"id": 99, "image_id": 1, "category_id": 5, "bbox": [1000, 500, 200, 200]})
    coco["annotations"].append({"id": 100, "image_id": 2, "category_id": 1})  # a label without a box
    for a in coco["annotations"]:
        if a["image_id"] == 2:
            a.pop("bbox", None)
    coco["categories"].append({"id": 8, "name": "empty"})
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != 3]
    coco["annotations"].append({"id": 101, "image_id": 3, "category_id": 8})  # an empty photo, no box
    path = tmp_path / "cct.json"
    path.write_text(json.dumps(coco))
    out = tmp_path / "out"
    code, _, err = cli("shard", path, out, "--image-root", ena, "--crops", "annotations", "--size", "64",
                       "--drop-classes", "striped skunk", "--empty-class", "empty", "--quiet")
    assert code == 0, err
    samples = _samples(out)
    assert "2480_a0" in samples and "2480_a1" not in samples  # the skunk box on the opossum photo went
    assert samples["2573"]["json"]["label"] == "empty" and "crop" not in samples["2573"]["json"]
    rejected = _rejected(out)
    assert rejected["2595.jpg"] == ("no box", "no box for Virginia Opossum")
    assert sorted(reason for reason, _ in rejected.values()).count("dropped class") == 3


@pytest.mark.parametrize("args, message", [
    (["--crops", "detections"], "--crops detections needs --detections"),
    (["--crops", "annotations"], "a csv source has no boxes"),
    (["--detections", "{md}", "--crops", "annotations"], "cannot be combined"),
    (["--detections", "{md}", "--min-detection-conf", "1.5"], "--min-detection-conf 1.5"),
    (["--detections", "{md}", "--detection-categories", "deer"], "--detection-categories deer: not a category"),
    (["--detections", "{md}", "--crop-padding", "3"], "--crop-padding 3.0: must be between 0 and 1"),
    (["--min-detection-conf", "0.5"], "--min-detection-conf applies to --detections"),
    (["--empty-class", "blank"], "--empty-class applies to crops"),
    (["--crop-padding", "0.2"], "--crop-padding applies to crops"),
    (["--detections", "{missing}"], "--detections file not found"),
    (["--detections", "{coco}"], "not a MegaDetector batch-output file"),
])
def test_bad_crop_options_are_one_line_user_errors(data_dir, tmp_path, cli, args, message):
    ena = data_dir / "ena24-small"
    names = {"md": ena / "md_annotations.json", "missing": tmp_path / "nope.json", "coco": ena / "coco_annotations.json"}
    args = [str(a).format(**names) for a in args]
    code, _, err = cli("shard", ena / "labels.csv", tmp_path / "out", *args, "--quiet")
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_interrupted_crop_run_resumes_to_the_same_bytes(data_dir, tmp_path, cli, monkeypatch):
    from camtrap_fast.shards import build

    ena = data_dir / "ena24-small"
    md = _edited_md(ena, tmp_path)  # 2480.jpg has three detections: its crops must stay together
    args = [ena / "labels.csv", None, "--detections", md, "--size", "48", "--shard-size", "2", "--split", "1,0,0",
            "--quiet"]
    real_finish, finished = build._ShardWriter.finish, []

    def finish_then_die(self):
        if len(finished) == 3:
            raise KeyboardInterrupt
        finished.append(len(self.samples))
        return real_finish(self)

    monkeypatch.setattr(build._ShardWriter, "finish", finish_then_die)
    assert cli("shard", *[tmp_path / "killed" if a is None else a for a in args])[0] == 130  # interrupted
    monkeypatch.setattr(build._ShardWriter, "finish", real_finish)
    assert len(list((tmp_path / "killed" / "train").glob("shard-*.tar"))) == 3
    code, stdout, err = cli("shard", *[tmp_path / "killed" if a is None else a for a in args[:-1]])
    assert code == 0, err
    assert "resumed after 3 finished shard(s)" in stdout
    assert cli("shard", *[tmp_path / "clean" if a is None else a for a in args])[0] == 0
    for path in sorted((tmp_path / "clean").glob("*/*.*")):
        assert path.read_bytes() == (tmp_path / "killed" / path.relative_to(tmp_path / "clean")).read_bytes(), path
    index = load_manifest(tmp_path / "clean").load_index("train")
    assert len(index) == 23 and index.sources().count("2480.jpg") == 3
    # a shard holds whole images: the three crops of 2480.jpg share one
    assert len({int(index.shard_ids[i]) for i, s in enumerate(index.sources()) if s == "2480.jpg"}) == 1


def _edited_md(ena: Path, tmp_path: Path) -> Path:
    data = json.loads((ena / "md_annotations.json").read_text())
    data["images"][0]["detections"] += [{"category": "1", "conf": 0.6, "bbox": [0.05, 0.05, 0.1, 0.1]},
                                        {"category": "1", "conf": 0.5, "bbox": [0.7, 0.6, 0.2, 0.3]}]
    path = tmp_path / "md.json"
    path.write_text(json.dumps(data))
    return path
