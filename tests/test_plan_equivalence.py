"""The vectorised planning code gives exactly what the per-record code it replaced gave (tests/plan_reference.py,
main's code verbatim): the same split for every record, the same sample keys, the same records from a COCO file
and the same fingerprint, on a few thousand varied records (sequences with mixed and tied labels, images without
a sequence, multi-label images, crops, classes of one to three groups, fixed splits, odd file names)."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import plan_reference as reference
import pytest

from camtrap_fast.errors import UserError
from camtrap_fast.ingest.coco import load_coco_checked
from camtrap_fast.ingest.crop_plan import CropConfig
from camtrap_fast.ingest.filters import FilterConfig, apply_filters
from camtrap_fast.ingest.records import ANNOTATION, DETECTION, Box, Record
from camtrap_fast.ingest.splits import SplitConfig, assign_splits
from camtrap_fast.shards.dry_run import dry_run_report
from camtrap_fast.shards.plan import PlanOptions, _fingerprint, cut_chunks, make_plan
from camtrap_fast.shards.samples import sample_keys

CLASSES = ["zebra", "wildebeest", "gazelleThomsons", "Empty", "lion", "rare1", "rare2", "rare3", "émeu", 'q"uote']
ODD_NAMES = ["a b/c d.JPG", "x/./y.jpg", "d/../e.png", "ü/ñ.jpg", "p%20q.jpg", "k#1?.jpg", "noext", "dots.in.name.jpeg",
             "/abs/path.jpg", "trailing_.jpg", "__.jpg", "a" * 300 + ".jpg", "https://host/img 1.jpg", "s3://b/k.jpg"]


def _records(n: int, seed: int, sequences: bool = True, boxes: bool = False, fixed: bool = False) -> list[Record]:
    rng = random.Random(seed)
    records, seq = [], 0
    weights = [40, 25, 15, 10, 5, 0.05, 0.1, 0.15, 2, 1]
    while len(records) < n:
        seq += 1
        frames = rng.choice([1, 1, 2, 3, 5]) if sequences and rng.random() < 0.9 else 1
        base = rng.choices(CLASSES, weights)[0]
        split = rng.choice(["train", "val", "test"]) if fixed and rng.random() < 0.3 else None
        for f in range(frames):
            label = base if rng.random() < 0.85 else rng.choices(CLASSES, weights)[0]  # mixed and tied sequences
            labels = (label,) if rng.random() < 0.9 else tuple(dict.fromkeys((label, *rng.sample(CLASSES, 2))))
            name = (rng.choice(ODD_NAMES) if rng.random() < 0.05 else f"S{seq % 3}/L{seq % 7:02d}/IMG_{len(records):05d}.JPG")
            name = f"{len(records)}/{name}" if rng.random() < 0.5 else name.replace("IMG", "img")  # some collide
            kind = rng.random()
            crop = ((Box((0.1, 0.1, 0.2, 0.2), i, DETECTION if kind < 0.5 else ANNOTATION,
                         rng.choice([None, label, "lion"]), 0.9, "animal") for i in rng.sample(range(9), rng.randint(1, 3)))
                    if boxes and kind < 0.7 else ())
            has_seq = sequences and rng.random() < 0.95
            records.append(Record(f"/data/{len(records)}/{name}", name, label, labels, f"L{seq % 7}" if rng.random() < 0.9
                                  else None, f"seq{seq}" if has_seq else None, f if has_seq else None,
                                  "2012-01-01 00:00:00" if rng.random() < 0.8 else None, split, tuple(crop)))
    return records[:n]


def _outcome(split, records, config):
    """The split's result, or its error message: a source whose fixed splits straddle a group must fail alike."""
    try:
        return split(records, config)
    except UserError as error:
        return str(error)


CONFIGS = [SplitConfig(), SplitConfig(seed=3), SplitConfig((0.7, 0.3, 0.0), "sequence", 1),
           SplitConfig((0.5, 0.0, 0.5), "location", 2), SplitConfig((0.8, 0.1, 0.1), "none", 4),
           SplitConfig((1.0, 0.0, 0.0), "auto", 5), SplitConfig((0.34, 0.33, 0.33), "sequence", 6)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.group_by}-{c.seed}")
@pytest.mark.parametrize("kind", ["sequences", "frames", "fixed"])
def test_split_matches_the_per_record_code(config, kind):
    records = _records(2000, ["sequences", "frames", "fixed"].index(kind) * 10 + config.seed, sequences=kind != "frames", fixed=kind == "fixed")
    kept, _ = apply_filters(records, FilterConfig(drop_classes=("empty",)))  # as the plan does: dropped, deduplicated
    assert _outcome(assign_splits, kept, config) == _outcome(reference.assign_splits, kept, config)
    # unfiltered: duplicates, unlabelled-looking and multi-label records too
    assert _outcome(assign_splits, records, config) == _outcome(reference.assign_splits, records, config)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 40])
def test_split_of_tiny_sources(n):
    for config in CONFIGS:
        records = _records(n, n)
        assert assign_splits(records, config) == reference.assign_splits(records, config)


@pytest.mark.parametrize("boxes", [False, True])
def test_sample_keys_match(boxes):
    records = _records(4000, 7, boxes=boxes)
    kept, _ = apply_filters(records, FilterConfig())
    assert sample_keys(kept) == reference.sample_keys(kept)


def test_fingerprint_matches():
    records = _records(3000, 11, boxes=True, fixed=True)
    identities = {r.path: random.Random(r.path).choice(["remote", "missing", "12:345", "error:13"]) for r in records}
    for options in (PlanOptions("s.json"), PlanOptions("s.json", filters=FilterConfig(drop_classes=("Empty",)),
                                                       remote_media="skip", seed=3)):
        assert _fingerprint(options, "coco", records, identities) == \
            reference.fingerprint(options, "coco", records, identities)


@pytest.mark.parametrize("root", [None, "https://example.invalid/root/", "http://h/a b"])
def test_coco_records_match(tmp_path, root):
    rng = random.Random(5)
    images = [{"id": i if i % 3 else f"s{i}", "file_name": rng.choice(ODD_NAMES) if i % 11 == 0 else f"L{i % 5}/IMG_{i}.JPG",
               **({"seq_id": f"q{i // 3}", "frame_num": i % 3, "location": f"L{i % 5}"} if i % 4 else {}),
               **({"datetime": "2012-01-01 00:00:00"} if i % 2 else {"datetime": ""}),
               **({"frame_num": 1.0} if i % 13 == 0 else {})} for i in range(500)]
    annotations = [{"id": f"a{j}", "image_id": images[j % 480]["id"], "category_id": rng.randrange(4)} for j in range(700)]
    annotations.append({"id": "lost", "image_id": "nowhere", "category_id": 1})
    categories = [{"id": i, "name": n} for i, n in enumerate(["empty", "zebra", "lion", "émeu"])]
    source = tmp_path / "coco.json"
    source.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    assert load_coco_checked(source, root) == reference.load_coco_checked(source, root)


@pytest.mark.parametrize("shard_size", [1, 2, 7, 100, 10_000])
def test_shard_cuts_match(shard_size):
    records = _records(2000, 13, boxes=True)
    kept, _ = apply_filters(records, FilterConfig())
    split, _ = assign_splits(kept, SplitConfig())
    keys = sample_keys(split)
    members = {s: [r for r in split if r.split == s] for s in ("train", "val", "test")}
    members["test"] = []  # an empty split cuts no shard
    counts = {s: np.array([len(keys[r.path]) for r in members[s]], dtype=np.int64) for s in members}
    assert cut_chunks(counts, shard_size) == reference.cut_chunks(members, keys, shard_size)


def _write_source(path):
    """3,000 images: sequences (some without an id), multi-label images, boxes, duplicates, odd names, a lost
    annotation, and classes of a few images."""
    rng = random.Random(42)
    names = ["empty", "zebra", "wildebeest", "lion", "Zebra", "rareA", "rareB", "émeu"]
    images, annotations, seq = [], [], 0
    while len(images) < 3000:
        seq += 1
        base = rng.choices(range(len(names)), [30, 30, 20, 10, 3, 0.1, 0.2, 2])[0]
        for f in range(rng.choice([1, 1, 2, 3])):
            i = len(images)
            name = f"S{seq % 4}/L{seq % 9}/IMG_{i:05d}.JPG" if rng.random() < 0.97 else f"odd dir/{i}#x.jpg"
            images.append({"id": f"i{i}", "file_name": name, "seq_id": f"s{seq}" if rng.random() < 0.95 else "",
                           "location": f"L{seq % 9}", "frame_num": f, "datetime": "2012-01-01 00:00:00"})
            for _ in range(rng.choice([1, 1, 1, 2])):
                c = base if rng.random() < 0.9 else rng.randrange(len(names))
                ann = {"id": f"a{len(annotations)}", "image_id": f"i{i}", "category_id": c}
                if rng.random() < 0.6:
                    ann["bbox"] = [rng.randrange(0, 500), rng.randrange(0, 300), rng.randrange(10, 200), rng.randrange(10, 200)]
                annotations.append(ann)
            if i % 500 == 7:
                images.append(dict(images[-1]))  # a duplicate entry
    annotations.append({"id": "lost", "image_id": "nowhere", "category_id": 1})
    for im in images:
        im.setdefault("width", 1000); im.setdefault("height", 800)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": i, "name": n} for i, n in enumerate(names)]}))


# What main (789e5af, before vectorising) planned for _write_source's file, hashed: the plan digest (chunks, members
# in order), fingerprint, every sample key, facts, rejections, the classes without output and the dry-run report.
MAIN_PLANS = {
    "drop-empty": "9f3207f9e89f1924828fb8cbca275dc7b5fbfe846872b4aae3da4a36fc82d840",
    "location-keep-fraction": "d21a4707ce0a1fff324114ee4ac772615c548d31a141f18369a91f43618a778f",
    "annotation-crops": "58d47a830cd78b5613cff93c45bb272377a042552df8f1b49d96fcc2618ea580",
}


@pytest.mark.parametrize("name", sorted(MAIN_PLANS))
def test_plan_is_what_main_planned(tmp_path, name):
    source = tmp_path / "coco.json"
    _write_source(source)
    root = "https://example.invalid/cams/"
    options = {
        "drop-empty": PlanOptions(source, image_root=root, filters=FilterConfig(drop_classes=("empty",))),
        "location-keep-fraction": PlanOptions(
            source, image_root=root, split=SplitConfig((0.6, 0.2, 0.2), "location", 3), shard_size=50, seed=2,
            filters=FilterConfig(keep_fraction=(("empty", 0.3),), drop_multi_species=True)),
        "annotation-crops": PlanOptions(source, image_root=root, crops=CropConfig(mode="annotations", empty_class="empty"),
                                        shard_size=64, split=SplitConfig(group_by="none")),
    }[name]
    plan = make_plan(options)
    keys = [plan.keys[r.path] for s in ("train", "val", "test") for r in plan.members[s]]
    blob = json.dumps([plan.digest(), plan.fingerprint, keys, sorted(plan.facts.items()),
                       [(r.path, r.reason, r.detail) for r in plan.rejections], plan.outside, plan.wanted,
                       dry_run_report(plan)], default=str).replace(str(source), "SOURCE")
    assert hashlib.sha256(blob.encode()).hexdigest() == MAIN_PLANS[name]


def test_dry_run_command_prints_the_plan_and_writes_nothing(tmp_path, cli):
    source = tmp_path / "coco.json"
    _write_source(source)
    before = sorted(tmp_path.rglob("*"))
    code, out, err = cli("shard", source, "--dry-run", "--image-root", "https://example.invalid/cams/",
                         "--drop-classes", "empty")
    assert code == 0, err
    plan = make_plan(PlanOptions(source, image_root="https://example.invalid/cams/",
                                 filters=FilterConfig(drop_classes=("empty",))))
    assert out == "\n".join(dry_run_report(plan)) + "\n"
    assert out.startswith(f"dry run: {plan.listed} images listed (coco)") and "would be fetched over HTTP(S)" in out
    assert sorted(tmp_path.rglob("*")) == before
