"""MegaDetector output joined to label sources: reading the file, which detections become samples, accounting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from camtrap_fast.errors import UserError
from camtrap_fast.ingest import load_records
from camtrap_fast.ingest.crop_plan import CropConfig, plan_crops, select_images
from camtrap_fast.ingest.filters import FilterConfig
from camtrap_fast.ingest.megadetector import read_detections


@pytest.fixture(scope="module")
def md_file(data_dir) -> Path:
    return data_dir / "ena24-small" / "md_annotations.json"


def test_reads_the_real_megadetector_file(md_file):
    detections = read_detections(md_file)
    assert detections.categories == {"1": "animal", "2": "person", "3": "vehicle"}
    assert len(detections.images) == 21 and all(len(e.boxes) == 1 for e in detections.images.values())
    opossum = detections.images["2480.jpg"].boxes[0]
    assert (opossum.bbox, opossum.conf, opossum.category, opossum.index) == ((0.35, 0.35, 0.3, 0.3), 0.926, "animal", 0)
    assert detections.category_ids(("animal",)) == {"1"} == detections.category_ids(("1",))
    assert detections.category_ids(("Animal", "person")) == {"1", "2"}
    with pytest.raises(UserError, match=r"--detection-categories deer: not a category of .* \(it has 1=animal"):
        detections.category_ids(("deer",))


def _md(tmp_path: Path, images: list, categories=None) -> Path:
    path = tmp_path / "md.json"
    path.write_text(json.dumps({"info": {"format_version": "1.4"}, "images": images,
                                "detection_categories": categories or {"1": "animal", "2": "person"}}))
    return path


@pytest.mark.parametrize("images, message", [
    ([{"detections": []}], r"images\[0\] has no 'file' name"),
    ([{"file": "a.jpg"}, {"file": "./a.jpg"}], r"images\[1\] \(./a.jpg\) is listed twice"),
    ([{"file": "a.jpg", "detections": [{"category": "7", "conf": 0.5, "bbox": [0, 0, 1, 1]}]}],
     r"\(a.jpg\): detection 0 has category '7'"),
    ([{"file": "a.jpg", "detections": [{"category": "1", "conf": 1.5, "bbox": [0, 0, 1, 1]}]}],
     r"detection 0 has conf 1.5"),
    ([{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.5, "bbox": [0, 0, 1]}]}],
     r"detection 0: bbox \[0, 0, 1\] is not four finite numbers"),
    ([{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.5, "bbox": [0.2, 0.2, -0.1, 0.3]}]}],
     r"negative width or height"),
    ([{"file": "a.jpg", "detections": [{"category": "1", "conf": 0.5, "bbox": [1.5, 0.2, 0.1, 0.3]}]}],
     r"lies outside the image"),
])
def test_bad_detections_file_is_a_one_line_user_error(tmp_path, images, message):
    with pytest.raises(UserError, match=message) as error:
        read_detections(_md(tmp_path, images))
    assert str(tmp_path / "md.json") in str(error.value) and "\n" not in str(error.value)


def test_not_a_megadetector_file(tmp_path, data_dir):
    with pytest.raises(UserError, match="not a MegaDetector batch-output file.*a COCO Camera Traps file"):
        read_detections(data_dir / "ena24-small" / "coco_annotations.json")
    with pytest.raises(UserError, match="--detections file not found"):
        read_detections(tmp_path / "missing.json")
    (tmp_path / "v2.json").write_text(json.dumps({"info": {"format_version": "2.0"}, "images": [],
                                                  "detection_categories": {}}))
    with pytest.raises(UserError, match="format 2.0 is not supported"):
        read_detections(tmp_path / "v2.json")


def test_threshold_keeps_detections_at_or_above_it(data_dir, md_file):
    _, records = load_records(data_dir / "ena24-small" / "labels.csv")
    kept, rejected, digest = plan_crops(records, CropConfig("detections", md_file), "csv", data_dir)
    assert len(kept) == 21 and not rejected and all(len(r.boxes) == 1 for r in kept)
    # 13 of the 21 detections have conf >= 0.9; the other 8 images have nothing that confident
    strict, rejected, other = plan_crops(records, CropConfig("detections", md_file, min_conf=0.9), "csv", data_dir)
    assert len(strict) == 13 and {r.reason for r in rejected} == {"no detection"} and len(rejected) == 8
    assert {r.detail for r in rejected if r.path.endswith("/596.jpg")} == {"none >= 0.9 (best 0.885)"}
    assert digest != other  # the threshold is part of what the shard fingerprint sees
    # --empty-class: images where the detector saw nothing (at this threshold) become whole frames of it
    blank, rejected, _ = plan_crops(records, CropConfig("detections", md_file, 0.9, empty_class="blank"), "csv",
                                    data_dir)
    assert not rejected and sum(r.label == "blank" and not r.boxes for r in blank) == 8


def _edited_ena24_md(md_file: Path, tmp_path: Path) -> Path:
    """The real file with what real runs contain: a missing image, a failure, several boxes, people, empties."""
    data = json.loads(md_file.read_text())
    entries = {e["file"]: e for e in data["images"]}
    del entries["9455.jpg"]  # not in the detections file
    entries["8786.jpg"] = {"file": "8786.jpg", "failure": "Failure image access", "detections": None}
    entries["2480.jpg"]["detections"] += [  # three animals, one below the threshold
        {"category": "1", "conf": 0.1, "bbox": [0.05, 0.05, 0.1, 0.1]},
        {"category": "1", "conf": 0.55, "bbox": [0.7, 0.6, 0.2, 0.3]},
    ]
    entries["596.jpg"]["detections"][0]["category"] = "2"  # only a person
    entries["352.jpg"]["detections"] = []  # the detector found nothing
    entries["422.jpg"]["detections"][0]["conf"] = 0.15  # nothing confident
    data["images"] = list(entries.values())
    path = tmp_path / "md_edited.json"
    path.write_text(json.dumps(data))
    return path


def test_every_image_and_qualifying_detection_is_accounted_for(data_dir, md_file, tmp_path):
    edited = _edited_ena24_md(md_file, tmp_path)
    _, records = load_records(data_dir / "ena24-small" / "labels.csv")
    kept, rejected, _ = select_images(records, CropConfig("detections", edited), FilterConfig(), "csv",
                                      data_dir / "ena24-small" / "labels.csv", None)
    reasons = {Path(r.path).name: (r.reason, r.detail) for r in rejected}
    assert reasons == {
        "9455.jpg": ("not in detections file", "9455.jpg not in md_edited.json"),
        "8786.jpg": ("detector failure", "Failure image access"),
        "596.jpg": ("no detection", "only person >= 0.2 (not in --detection-categories)"),
        "352.jpg": ("no detection", "the detector found nothing"),
        "422.jpg": ("no detection", "none >= 0.2 (best 0.150)"),
    }
    assert len(kept) + len(rejected) == 21
    opossum = next(r for r in kept if r.relpath == "2480.jpg")
    assert [(b.index, b.conf) for b in opossum.boxes] == [(0, 0.926), (2, 0.55)]  # index: place in the file
    assert sum(len(r.boxes) for r in kept) == 17

    # with --empty-class the two images where nothing was seen are whole frames; the person image is not
    kept, rejected, _ = select_images(records, CropConfig("detections", edited, empty_class="blank"),
                                      FilterConfig(), "csv", data_dir / "ena24-small" / "labels.csv", None)
    assert sorted(Path(r.path).name for r in kept if r.label == "blank") == ["352.jpg", "422.jpg"]
    assert sorted(r.reason for r in rejected) == ["detector failure", "no detection", "not in detections file"]
    # and the filters act on the empty class like on any other
    kept, rejected, _ = select_images(records, CropConfig("detections", edited, empty_class="blank"),
                                      FilterConfig(drop_classes=("Blank",)), "csv", data_dir, None)
    assert not any(r.label == "blank" for r in kept) and len(rejected) == 5


def test_crop_config_refuses_contradictions():
    for kwargs, message in [
        (dict(mode="detections"), "needs --detections"),
        (dict(mode="annotations", detections=Path("md.json")), "cannot be combined with --crops annotations"),
        (dict(mode="detections", detections=Path("md.json"), min_conf=1.2), "--min-detection-conf 1.2"),
        (dict(mode="detections", detections=Path("md.json"), categories=()), "--detection-categories"),
        (dict(mode="none", empty_class="blank"), "--empty-class applies to crops"),
        (dict(mode="square"), "--crops square"),
    ]:
        with pytest.raises(UserError, match=message):
            CropConfig(**kwargs)


def test_detections_run_on_another_folder_is_explained(data_dir, md_file, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("filepath,label\nena24-small/2480.jpg,opossum\nena24-small/49.jpg,bear\n")
    _, records = load_records(labels, image_root=data_dir)
    with pytest.raises(UserError, match=r"none of the 2 listed images is in it \(it names files like '2480.jpg', "
                                        r"the label source like 'ena24-small/2480.jpg'\)"):
        plan_crops(records, CropConfig("detections", md_file), "csv", labels)


def test_select_detections_is_the_rule_predict_shares(md_file, tmp_path):
    from camtrap_fast.ingest.crop_plan import select_detections

    entry = read_detections(_md(tmp_path, [{"file": "a.jpg", "detections": [
        {"category": "1", "conf": 0.9, "bbox": [0, 0, 0.5, 0.5]}, {"category": "2", "conf": 0.95, "bbox": [0, 0, 1, 1]},
        {"category": "1", "conf": 0.2, "bbox": [0.5, 0.5, 0.5, 0.5]}, {"category": "1", "conf": 0.19, "bbox": [0, 0, 1, 1]},
    ]}])).images["a.jpg"]
    assert [b.index for b in select_detections(entry, frozenset({"animal"}), 0.2)] == [0, 2]
    assert [b.index for b in select_detections(entry, frozenset({"animal", "person"}), 0.5)] == [0, 1]
