"""`camtrap-fast shard` end to end on real photos: formats, rejections, readers, determinism, safety."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camtrap_fast.shards.manifest import load_manifest
from camtrap_fast.shards.reader import ShardReader

ENA24_CLASSES = 7


@pytest.fixture(scope="module")
def ena24_coco(tmp_path_factory, data_dir):
    from camtrap_fast.cli import main

    out = tmp_path_factory.mktemp("shards") / "coco"
    assert main(["shard", str(data_dir / "ena24-small" / "coco_annotations.json"), str(out),
                 "--split", "0.34,0.33,0.33", "--shard-size", "4", "--quiet"]) == 0
    return out


def _rejected(out: Path) -> dict[str, str]:
    with open(out / "rejected.csv", newline="") as f:
        return {Path(row["path"]).name: row["reason"] for row in csv.DictReader(f)}


def _tar_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/shard-*.*"))}


def test_coco_shards_match_manifest_and_index(ena24_coco):
    manifest = load_manifest(ena24_coco)
    assert manifest.num_classes == ENA24_CLASSES
    assert sum(info.samples for info in manifest.splits.values()) == 21
    for split, info in manifest.splits.items():
        if not info.samples:
            continue
        index = manifest.load_index(split)
        assert len(index) == info.samples
        assert list(index.class_counts(manifest.num_classes)) == list(info.class_counts.values())
        with ShardReader(index, manifest.root) as reader:
            for i in range(len(index)):
                image = Image.open(io.BytesIO(reader.read(i)))
                assert image.format == "JPEG" and image.mode == "RGB" and min(image.size) == 256
        # the per-sample index and the tar agree on every key, label and payload
        for shard_id, shard in enumerate(index.shards):
            with tarfile.open(manifest.root / shard) as tar:
                names = tar.getnames()
                assert names == sorted(names, key=lambda n: (names.index(n.split(".")[0] + ".cls"), n))
                rows = np.flatnonzero(index.shard_ids == shard_id)
                for i in rows:
                    key = index.key(i)
                    assert int(tar.extractfile(f"{key}.cls").read()) == index.labels[i]
                    meta = json.loads(tar.extractfile(f"{key}.json").read())
                    assert meta["key"] == key and meta["source"].endswith(".jpg")


def test_webdataset_reads_back_manifest_counts(ena24_coco):
    import webdataset as wds

    manifest = load_manifest(ena24_coco)
    for split, info in manifest.splits.items():
        if not info.samples:
            continue
        urls = [str(p) for p in manifest.shard_paths(split)]
        labels = [int(s["cls"]) for s in wds.WebDataset(urls, shardshuffle=False).decode("pil")]
        assert np.bincount(labels, minlength=ENA24_CLASSES).tolist() == list(info.class_counts.values())


def test_dali_reads_back_with_idx_files(ena24_coco):
    dali = pytest.importorskip("nvidia.dali")
    from nvidia.dali import fn, pipeline_def

    manifest = load_manifest(ena24_coco)
    info = manifest.splits["train"]
    paths = [str(p) for p in manifest.shard_paths("train")]

    @pipeline_def(batch_size=info.samples, num_threads=1, device_id=None)
    def pipe():
        jpg, cls = fn.readers.webdataset(paths=paths, index_paths=[p[:-4] + ".idx" for p in paths],
                                         ext=["jpg", "cls"], missing_component_behavior="error")
        return fn.decoders.image(jpg, device="cpu"), cls

    p = pipe()
    p.build()
    images, cls = p.run()
    labels = [int(bytes(np.array(c)).decode()) for c in cls]
    assert np.bincount(labels, minlength=ENA24_CLASSES).tolist() == list(info.class_counts.values())
    assert all(min(np.array(im).shape[:2]) == 256 for im in images)
    del dali


def test_idx_matches_dalis_own_wds2idx(ena24_coco, tmp_path):
    wds2idx = Path(sys.executable).parent / "wds2idx"
    if not wds2idx.exists():
        pytest.skip("DALI's wds2idx tool is not installed")
    shard = load_manifest(ena24_coco).shard_paths("train")[0]
    subprocess.run([str(wds2idx), str(shard), str(tmp_path / "ref.idx")], check=True, capture_output=True)
    assert (tmp_path / "ref.idx").read_text() == shard.with_suffix(".idx").read_text()


def test_csv_source_gives_same_samples_as_coco(tmp_path, data_dir, cli, ena24_coco):
    code, out, err = cli("shard", data_dir / "ena24-small" / "labels.csv", tmp_path / "csv",
                         "--split", "0.34,0.33,0.33", "--shard-size", "4")
    assert code == 0, err
    assert "listed" in out and "21" in out
    coco, table = load_manifest(ena24_coco), load_manifest(tmp_path / "csv")
    assert coco.classes == table.classes
    assert {s: i.class_counts for s, i in coco.splits.items()} == {s: i.class_counts for s, i in table.splits.items()}
    # same images, same options: the tars are byte-identical whatever the source format
    assert _tar_bytes(ena24_coco) == _tar_bytes(tmp_path / "csv")


@pytest.fixture
def messy_folder(tmp_path, data_dir):
    """Class folders with every kind of problem file a user can have."""
    root = tmp_path / "messy"
    edge = data_dir / "edge-cases"
    layout = {
        "elephant": ["african_elephants.jpg", "african_elephants_bw.jpg", "african_elephants_cmyk.jpg",
                     "african_elephants_truncated_file.jpg", "african_elephants_with_exif_orientation.jpg"],
        "blank": ["blank.jpg", "blank2.jpg", "blank3.jpg"],
        "human": ["human.jpg"],
        "dog": ["domestic_dog.jpg"],
    }
    for label, names in layout.items():
        (root / label).mkdir(parents=True)
        for name in names:
            (root / label / name).symlink_to(edge / name)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    ocelot = (edge / "ocelot.jpg").read_bytes()
    at = ocelot.find(b"\xff\xc4")  # corrupt the Huffman table: PIL identifies a JPEG it cannot decode
    (root / "dog" / "broken.jpg").write_bytes(ocelot[: at + 4] + b"\xff" * 26 + ocelot[at + 30 :])
    small = root / "dog" / "small.png"
    Image.new("RGBA", (120, 90), (10, 200, 30, 128)).save(small)
    return root


def test_every_input_is_in_a_shard_or_rejected_with_its_reason(messy_folder, tmp_path, cli):
    out = tmp_path / "out"
    code, stdout, err = cli("shard", messy_folder, out, "--drop-classes", "Human", "--quiet")
    assert code == 0, err
    rejected = _rejected(out)
    assert rejected == {
        "african_elephants_truncated_file.jpg": "truncated",
        "notes.txt": "not an image",
        "gone.jpg": "missing file",
        "broken.jpg": "unreadable",
        "human.jpg": "dropped class",
    }
    manifest = load_manifest(out)
    shards_total = sum(info.samples for info in manifest.splits.values())
    listed = sum(1 for p in messy_folder.rglob("*") if p.is_symlink() or p.is_file())
    assert shards_total + len(rejected) == listed
    assert manifest.rejected == len(rejected)
    assert manifest.classes == ("blank", "dog", "elephant")

    sources = {}
    for split in manifest.splits:
        if manifest.splits[split].samples:
            for shard in manifest.shard_paths(split):
                with tarfile.open(shard) as tar:
                    for member in tar.getmembers():
                        if member.name.endswith(".json"):
                            meta = json.loads(tar.extractfile(member).read())
                            jpg = Image.open(io.BytesIO(tar.extractfile(member.name[:-5] + ".jpg").read()))
                            sources[Path(meta["source"]).name] = jpg
    # grayscale, CMYK, RGBA all become RGB; EXIF rotation is applied; small images are not upscaled
    assert all(im.mode == "RGB" for im in sources.values())
    assert sources["african_elephants_with_exif_orientation.jpg"].size == sources["african_elephants.jpg"].size == (341, 256)
    assert sources["small.png"].size == (120, 90)


def test_keep_fraction_and_multi_species_rejections_are_reported(tmp_path, data_dir, cli):
    ena = data_dir / "ena24-small"
    coco = json.loads((ena / "coco_annotations.json").read_text())
    first = coco["images"][0]["id"]
    coco["annotations"].append({"id": 999, "image_id": first, "category_id": 4})  # a second species
    path = tmp_path / "cct.json"
    path.write_text(json.dumps(coco))
    code, _, err = cli("shard", path, tmp_path / "out", "--image-root", ena, "--drop-multi-species",
                       "--keep-fraction", "grey fox=0.34", "--quiet")
    assert code == 0, err
    reasons = sorted(_rejected(tmp_path / "out").values())
    assert reasons == ["kept-fraction", "kept-fraction", "multi-species"]


@pytest.mark.parametrize(
    "make_source, message",
    [
        (lambda d: d / "missing", "no such file or folder"),
        (lambda d: _write(d / "x.parquet", "abc"), "unknown source format"),
        (lambda d: _write(d / "l.csv", "path,species\na.jpg,zebra\n"), "missing column"),
        (lambda d: _write(d / "c.json", '{"images": []}'), "not a COCO Camera Traps file"),
        (lambda d: _write(d / "l.csv", "filepath,label\nnope.jpg,zebra\n"), "no usable images"),
        (lambda d: _write(d / "l.csv", "filepath,label\n"), "no usable images"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, cli, make_source, message):
    source = make_source(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = cli("shard", source, out, "--quiet")
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_options_are_user_errors(tmp_path, data_dir, cli):
    source = data_dir / "ena24-small" / "labels.csv"
    for args in (["--split", "0.5,0.5"], ["--group-by", "camera"], ["--size", "0"], ["--keep-fraction", "x"],
                 ["--shard-size", "0"], ["--format", "xml"]):
        code, _, err = cli("shard", source, tmp_path / "out", *args)
        assert code == 2 and err.count("\n") == 1, args
    assert not (tmp_path / "out").exists()


def test_out_holding_another_dataset_is_refused_unless_overwrite(tmp_path, data_dir, cli):
    source = data_dir / "ena24-small" / "labels.csv"
    out = tmp_path / "out"
    assert cli("shard", source, out, "--quiet")[0] == 0
    code, stdout, _ = cli("shard", source, out)  # same input and options: nothing to do
    assert code == 0 and "already complete" in stdout
    code, _, err = cli("shard", source, out, "--size", "128", "--quiet")
    assert code == 2 and "--overwrite" in err
    assert load_manifest(out).image_size == 256
    assert cli("shard", source, out, "--size", "128", "--overwrite", "--quiet")[0] == 0
    assert load_manifest(out).image_size == 128

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "mine.jpg").write_bytes(b"x")
    code, _, err = cli("shard", source, foreign, "--overwrite", "--quiet")
    assert code == 2 and "did not write" in err and (foreign / "mine.jpg").exists()


@pytest.fixture(scope="module")
def volume_folder(tmp_path_factory, data_dir):
    """~120 real 1-5 MP photos in 6 class folders (symlinks), enough to kill a run midway."""
    root = tmp_path_factory.mktemp("volume") / "photos"
    photos = sorted((data_dir / "lila-mixed").glob("*.[jJ][pP]*[gG]")) + sorted((data_dir / "ena24-small").glob("*.jpg"))
    for i in range(120):
        label = f"class{i % 6}"
        (root / label).mkdir(parents=True, exist_ok=True)
        src = photos[i % len(photos)]
        (root / label / f"{i:03d}{src.suffix.lower()}").symlink_to(src)
    return root


@pytest.mark.slow
def test_tars_are_byte_identical_whatever_the_worker_count(volume_folder, tmp_path, cli):
    for workers in (1, 2):
        code, _, err = cli("shard", volume_folder, tmp_path / f"w{workers}", "--size", "96",
                           "--shard-size", "16", "--workers", workers, "--quiet")
        assert code == 0, err
    one, two = _tar_bytes(tmp_path / "w1"), _tar_bytes(tmp_path / "w2")
    assert len(one) > 8 and one == two
    assert (tmp_path / "w1" / "train" / "index.npz").read_bytes() == (tmp_path / "w2" / "train" / "index.npz").read_bytes()


@pytest.mark.slow
def test_killed_run_leaves_nothing_complete_and_rerun_resumes(volume_folder, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "camtrap_fast", "shard", str(volume_folder), str(out), "--size", "96",
           "--shard-size", "8", "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(out.glob("*/shard-000001.tar")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob("*/shard-*.tar")), "the run finished before it could be killed"
    assert not (out / "manifest.json").exists() and not (out / "rejected.csv").exists()

    rerun = subprocess.run(cmd[:-1], capture_output=True, text=True)  # without --quiet: shows the summary
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed after" in rerun.stdout
    clean = tmp_path / "clean"
    subprocess.run(cmd[:5] + [str(clean)] + cmd[6:], check=True)
    assert _tar_bytes(out) == _tar_bytes(clean)
    assert not list(out.rglob("*.tmp")) and not (out / ".shard-progress.jsonl").exists()
    assert (out / "train" / "index.npz").read_bytes() == (clean / "train" / "index.npz").read_bytes()
    assert os.path.getsize(out / "rejected.csv") == os.path.getsize(clean / "rejected.csv")
