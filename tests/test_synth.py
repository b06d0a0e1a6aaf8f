"""The demo dataset generator: class sizes, COCO Camera Traps structure, determinism, night frames, CLI."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camtrap_fast.cli import main
from camtrap_fast.errors import UserError
from camtrap_fast.synth import SynthConfig, synthesize
from camtrap_fast.synth.counts import load_class_counts, scale_class_counts
from camtrap_fast.synth.species import SPECIES

SCALE = 0.002  # about 530 images: every class at its floor of 6 but the head of the long tail


def _tiny(out: Path, **overrides) -> SynthConfig:
    """A dataset of ~70 small images: fast enough to generate several times in one test."""
    settings = dict(scale=0.0002, size=32, num_locations=3, min_per_class=1)
    return SynthConfig(out, **{**settings, **overrides})


def _is_night(image: dict) -> bool:
    hour = int(image["datetime"][11:13])
    return hour >= 19 or hour < 6


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "demo"
    summary = synthesize(SynthConfig(out, scale=SCALE, detections=True))
    return summary, json.loads((out / "annotations.json").read_text(encoding="utf-8"))


def _labels(coco: dict) -> dict[str, str]:
    names = {c["id"]: c["name"] for c in coco["categories"]}
    return {a["image_id"]: names[a["category_id"]] for a in coco["annotations"]}


def test_packaged_counts_are_the_serengeti_s9_train_split():
    counts = load_class_counts("train")
    assert len(counts) == 52 and sum(counts.values()) == 155_254
    assert next(iter(counts)) == "wildebeest"
    assert set(SPECIES) == set(counts), "every class needs a drawn species"


def test_scaling_rounds_and_keeps_a_floor():
    counts = load_class_counts("train")
    scaled = scale_class_counts(counts, 0.01, min_count=6)
    assert scaled["wildebeest"] == 484 and scaled["zebra"] == 365 and scaled["elephant"] == 48
    assert scaled["rodents"] == 6 and scaled["lionMale"] == 6 and min(scaled.values()) == 6
    assert list(scaled) == list(counts)
    assert scale_class_counts(counts, 1.0, min_count=6) == {k: max(v, 6) for k, v in counts.items()}


def test_dataset_has_the_scaled_class_sizes(demo):
    summary, coco = demo
    expected = scale_class_counts(load_class_counts("train"), SCALE, min_count=6)
    assert Counter(_labels(coco).values()) == expected
    assert summary.class_counts == expected
    assert summary.num_images == len(coco["images"]) == sum(expected.values())
    assert summary.smallest_class[1] == 6 and summary.largest_class == ("wildebeest", 97)


def test_coco_camera_traps_structure(demo):
    summary, coco = demo
    assert set(coco) == {"info", "images", "annotations", "categories"}
    assert {"version", "description"} <= set(coco["info"])
    categories = coco["categories"]
    assert [c["id"] for c in categories] == list(range(1, 53))  # 0 is reserved for "empty" in CCT
    assert len({c["name"] for c in categories}) == 52

    image_ids = [im["id"] for im in coco["images"]]
    assert len(set(image_ids)) == len(image_ids)
    per_image = Counter(a["image_id"] for a in coco["annotations"])
    # one annotation per visible animal (herds give several), all of the image's one species
    assert set(per_image) == set(image_ids) and min(per_image.values()) == 1 and max(per_image.values()) > 1
    species = defaultdict(set)
    for a in coco["annotations"]:
        species[a["image_id"]].add(a["category_id"])
    assert all(len(ids) == 1 for ids in species.values())
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
    assert {a["category_id"] for a in coco["annotations"]} == set(range(1, 53))

    fields = {"id", "file_name", "width", "height", "seq_id", "seq_num_frames", "frame_num", "location", "datetime"}
    for im in coco["images"]:
        assert set(im) == fields
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", im["datetime"])
        assert re.fullmatch(r"images/loc\d\d/seq\d{6}_f[123]\.jpg", im["file_name"])
        assert (im["width"], im["height"]) == (128, 96)
    for im in coco["images"][:: max(len(coco["images"]) // 40, 1)]:
        with Image.open(summary.out_dir / im["file_name"]) as jpeg:
            assert jpeg.format == "JPEG" and jpeg.size == (im["width"], im["height"])
    assert len({im["location"] for im in coco["images"]}) == 10


def test_sequences_are_consistent(demo):
    _, coco = demo
    labels = _labels(coco)
    sequences = defaultdict(list)
    for im in coco["images"]:
        sequences[im["seq_id"]].append(im)
    for frames in sequences.values():
        frames.sort(key=lambda im: im["frame_num"])
        n = len(frames)
        assert 1 <= n <= 3
        assert [im["frame_num"] for im in frames] == list(range(1, n + 1))
        assert {im["seq_num_frames"] for im in frames} == {n}
        assert len({im["location"] for im in frames}) == 1
        assert len({labels[im["id"]] for im in frames}) == 1
        assert len({_is_night(im) for im in frames}) == 1
        times = [datetime.strptime(im["datetime"], "%Y-%m-%d %H:%M:%S") for im in frames]
        assert all(b - a == timedelta(seconds=1) for a, b in zip(times, times[1:]))
    # Rare classes are cut into at least three captures, so a split grouped by sequence can reach val and test.
    per_class = Counter(labels[frames[0]["id"]] for frames in sequences.values())
    assert min(per_class.values()) >= 3


def test_night_frames_are_grey_and_day_frames_are_colour(demo):
    summary, coco = demo
    night = [im for im in coco["images"] if _is_night(im)]
    day = [im for im in coco["images"] if not _is_night(im)]
    assert len(night) > 0.1 * len(coco["images"]) and len(day) > 0.5 * len(coco["images"])
    assert summary.num_night_images == len(night)
    for images, grey in ((night[:25], True), (day[:25], False)):
        for im in images:
            with Image.open(summary.out_dir / im["file_name"]) as jpeg:
                pixels = np.asarray(jpeg.convert("RGB")).astype(int)
            chroma = pixels.max(axis=2) - pixels.min(axis=2)
            if grey:
                assert chroma.max() <= 2, im["file_name"]
            else:
                assert chroma.mean() > 8, im["file_name"]


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_true_boxes_hold_the_animals(demo):
    """Where a day photo differs from its camera's usual view (the animal), the COCO boxes are."""
    summary, coco = demo
    boxes = defaultdict(list)
    for a in coco["annotations"]:
        if "bbox" in a:
            boxes[a["image_id"]].append(a["bbox"])
    assert summary.num_boxes == sum(map(len, boxes.values())) and len(boxes) > 0.97 * len(coco["images"])
    day = [im for im in coco["images"] if not _is_night(im)]
    pixels = {im["id"]: np.asarray(Image.open(summary.out_dir / im["file_name"]).convert("L"), dtype=np.float32)
              for im in day}
    inside_mass, inside_area = [], []
    for location in {im["location"] for im in day}:
        here = [im for im in day if im["location"] == location]
        if len(here) < 8:
            continue
        median = np.median(np.stack([pixels[im["id"]] for im in here]), axis=0)
        for im in here:
            residual = np.abs(pixels[im["id"]] - median)
            mask = np.zeros(residual.shape, dtype=bool)
            for x, y, w, h in boxes[im["id"]]:
                mask[y:y + h, x:x + w] = True
            strong = residual > 40  # clearly not the usual view (lighting and sensor noise stay below)
            if strong.any():
                inside_mass.append((strong & mask).sum() / strong.sum())
                inside_area.append(mask.mean())
    assert len(inside_mass) > 100
    # the boxes cover a seventh of the frame but hold nearly all that differs from the empty scene
    assert np.median(inside_area) < 0.3 and np.median(inside_mass) > 0.9


def test_simulated_detections_follow_the_true_boxes_with_misses_and_false_alarms(demo):
    from camtrap_fast.ingest.megadetector import read_detections

    summary, coco = demo
    detections = read_detections(summary.detections_path)  # the real MegaDetector reader accepts it
    assert set(detections.images) == {im["file_name"] for im in coco["images"]}
    assert summary.num_detections == sum(len(d.boxes) for d in detections.images.values())
    sizes = {im["file_name"]: (im["width"], im["height"]) for im in coco["images"]}
    truth = defaultdict(list)
    for a in coco["annotations"]:
        if "bbox" in a:
            truth[next(im["file_name"] for im in coco["images"] if im["id"] == a["image_id"])].append(a["bbox"])
    ious, missed, false_alarms = [], 0, []
    for file, entry in detections.images.items():
        width, height = sizes[file]
        boxes = [(x / width, y / height, w / width, h / height) for x, y, w, h in truth[file]]
        matched = set()
        for box in boxes:
            best = max(entry.boxes, key=lambda d: _iou(d.bbox, box), default=None)
            if best is None or _iou(best.bbox, box) < 0.3:
                missed += 1
            else:
                ious.append(_iou(best.bbox, box))
                matched.add(best.index)
        false_alarms += [d.conf for d in entry.boxes if d.index not in matched]
    total = sum(map(len, truth.values()))
    assert np.median(ious) > 0.75
    assert 0.02 * total < missed < 0.25 * total
    assert len(false_alarms) > 0.1 * len(coco["images"]) and np.median(false_alarms) < 0.3


def _iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    h = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - w * h
    return w * h / union if union > 0 else 0.0


def test_detections_do_not_change_the_photos(tmp_path):
    plain = _digest(synthesize(_tiny(tmp_path / "a")).out_dir)
    with_detections = _digest(synthesize(_tiny(tmp_path / "b", detections=True)).out_dir)
    assert with_detections.pop("detections.json") and plain == with_detections


def test_same_config_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    first = _digest(synthesize(_tiny(tmp_path / "a")).out_dir)
    again = _digest(synthesize(_tiny(tmp_path / "b")).out_dir)
    other = _digest(synthesize(_tiny(tmp_path / "c", seed=1)).out_dir)
    assert "annotations.json" in first and len(first) > 60
    assert first == again
    assert first["annotations.json"] != other["annotations.json"]
    assert sum(first[k] != other.get(k) for k in first) > 0.9 * len(first)


@pytest.mark.parametrize("bad", [
    dict(scale=0), dict(scale=-0.5), dict(scale=float("nan")), dict(scale=2.0), dict(size=31), dict(size=1025), dict(size=96.5),
    dict(seed=-1), dict(num_locations=0), dict(min_per_class=0), dict(jpeg_quality=100),
])
def test_config_rejects_bad_values_in_one_line(tmp_path, bad):
    with pytest.raises(UserError) as error:
        SynthConfig(tmp_path, **bad)
    assert "\n" not in str(error.value)


def test_non_empty_out_dir_needs_overwrite_which_keeps_other_files(tmp_path):
    out = tmp_path / "demo"
    synthesize(_tiny(out))
    (out / "notes.txt").write_text("mine")
    (out / "images" / "stray.jpg").write_bytes(b"old")
    with pytest.raises(UserError, match="--overwrite"):
        synthesize(_tiny(out))
    synthesize(_tiny(out, overwrite=True))
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "images" / "stray.jpg").exists()
    assert (out / "annotations.json").exists() and not list(out.glob(".*partial"))


def test_interrupted_run_leaves_no_annotations(tmp_path, monkeypatch):
    import camtrap_fast.synth as synth

    drawn = []

    def failing_render(*args, **kwargs):
        if len(drawn) == 5:
            raise KeyboardInterrupt
        drawn.append(1)
        return real_render(*args, **kwargs)

    real_render = synth.render_frame
    monkeypatch.setattr(synth, "render_frame", failing_render)
    with pytest.raises(KeyboardInterrupt):
        synthesize(_tiny(tmp_path / "demo"))
    assert len(list((tmp_path / "demo" / "images").rglob("*.jpg"))) == 5
    assert not (tmp_path / "demo" / "annotations.json").exists()


def test_cli_writes_the_dataset_and_summarises(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["synth", str(out), "--scale", "0.0005", "--size", "32", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    coco = json.loads((out / "annotations.json").read_text(encoding="utf-8"))
    assert f"wrote {len(coco['images'])} images" in printed
    assert "smallest" in printed and "largest wildebeest" in printed and str(out / "annotations.json") in printed
    assert coco["images"][0]["width"] == 43 and coco["images"][0]["height"] == 32
    assert coco["info"]["synth"]["seed"] == 3

    assert main(["synth", str(out), "--scale", "0.0005", "--size", "32"]) == 2  # not empty, no --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_cli_bad_scale_fails_with_one_line(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "demo"), "--scale", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scale" in err and err.startswith("camtrap-fast synth: error:")
    assert not (tmp_path / "demo").exists()


def _foreground_colour_histograms(root: Path, coco: dict) -> np.ndarray:
    """Per image, a 4x4x4 colour histogram weighted by how far each pixel is from its camera's median view.

    Subtracting the per-location median (day and night apart) removes most of the background, so the
    histogram mostly describes the animal, wherever it stands in the frame.
    """
    pixels = []
    for im in coco["images"]:
        with Image.open(root / im["file_name"]) as jpeg:
            jpeg.draft("RGB", (32, 24))  # DCT-domain downscale: decoding costs next to nothing
            pixels.append(np.asarray(jpeg.convert("RGB").resize((32, 24)), dtype=np.float32) / 255)
    x = np.stack(pixels)
    keys = np.array([f"{im['location']}/{_is_night(im)}" for im in coco["images"]])
    residual = np.empty_like(x)
    for key in set(keys):
        residual[keys == key] = x[keys == key] - np.median(x[keys == key], axis=0)
    weight = np.abs(residual).sum(-1).reshape(len(x), -1)
    weight /= weight.sum(1, keepdims=True) + 1e-6
    bins = np.minimum((x * 4).astype(int), 3)
    code = (bins[..., 0] * 16 + bins[..., 1] * 4 + bins[..., 2]).reshape(len(x), -1)
    histograms = np.zeros((len(x), 64))
    np.add.at(histograms, (np.repeat(np.arange(len(x)), code.shape[1]), code.ravel()), weight.ravel())
    return histograms


def _nearest_class_mean_balanced_accuracy(features, labels, seq_ids, keep, seed) -> float:
    """Hold out ~30 % of each class's sequences (frames of one capture never straddle), classify by nearest mean."""
    chosen = np.isin(labels, keep)
    features, labels, seq_ids = features[chosen], labels[chosen], seq_ids[chosen]
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for name in sorted(set(labels)):
        sequences = sorted(set(seq_ids[labels == name]))
        rng.shuffle(sequences)
        test |= np.isin(seq_ids, sequences[:max(1, round(0.3 * len(sequences)))])
    classes = np.unique(labels[~test])
    means = np.stack([features[~test & (labels == c)].mean(0) for c in classes])
    predicted = classes[np.abs(features[test][:, None, :] - means[None]).sum(-1).argmin(1)]
    return float(np.mean([(predicted[labels[test] == c] == c).mean() for c in np.unique(labels[test])]))


def test_species_are_learnable_but_not_trivially(demo):
    summary, coco = demo
    features = _foreground_colour_histograms(summary.out_dir, coco)
    names = _labels(coco)
    labels = np.array([names[im["id"]] for im in coco["images"]])
    seq_ids = np.array([im["seq_id"] for im in coco["images"]])

    head = ["wildebeest", "zebra", "gazelleThomsons"]  # enough images for a stable estimate; chance is 1/3
    head_accuracy = np.mean([_nearest_class_mean_balanced_accuracy(features, labels, seq_ids, head, s)
                             for s in range(4)])
    assert 0.45 < head_accuracy < 0.9
    # All 52 classes, most with 4-5 training images: a crude classifier stays far from solving it.
    everything = np.mean([_nearest_class_mean_balanced_accuracy(features, labels, seq_ids, list(SPECIES), s)
                          for s in range(4)])
    assert everything < 0.3
