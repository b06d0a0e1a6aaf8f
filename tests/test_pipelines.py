"""Loader contract, shared pieces (config, crop draws, JPEG check, normalization) and the PIL backend, on CPU.

DALI-specific tests live in test_pipelines_dali.py; both run on real photos
shrunk into a few small shards (pipeline_fixtures.py).
"""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.transforms import v2

from camtrap_fast.errors import Fault, UserError
from camtrap_fast.devices import resolve_device
from camtrap_fast.pipelines import LoaderConfig, eval_inputs, make_loader, resolve_backend, to_inputs
from camtrap_fast.pipelines import factory, normalize
from camtrap_fast.pipelines.crop_geometry import crop_windows, draw_crops
from camtrap_fast.pipelines.jpeg_header import jpeg_size
from camtrap_fast.pipelines.normalize import to_images
from pipeline_fixtures import copy_shards, make_photo_shards, overwrite_payload, payload, truncate_in

SIZE = 48  # output side: small keeps these tests fast
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def shards(tmp_path_factory, data_dir):
    return make_photo_shards(tmp_path_factory.mktemp("pipelines"), data_dir)  # 30 photos, 3 classes, 4 shards


def config(mode: str, **overrides) -> LoaderConfig:
    base = dict(backend="pil", device="cpu", batch_size=8, image_size=SIZE, workers=0)
    return LoaderConfig(mode=mode, **{**base, **overrides})


def run_epoch(loader, order, epoch=0):
    batches = list(loader.epoch(order, epoch))
    if not batches:
        return torch.empty(0, 3, SIZE, SIZE), torch.empty(0, dtype=torch.int64), []
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]), [len(y) for _, y in batches]


def reference_eval(data: bytes, resize: int, size: int) -> torch.Tensor:
    return reference_eval_tensor(Image.open(io.BytesIO(data)), resize, size)


def reference_eval_tensor(image: Image.Image, resize: int, size: int) -> torch.Tensor:
    """What most code writes: torchvision Resize + CenterCrop on the PIL image; uint8 HWC."""
    tensor = v2.Compose([v2.PILToTensor(), v2.Resize(resize, antialias=True), v2.CenterCrop(size)])(image.convert("RGB"))
    return tensor.permute(1, 2, 0)


# --- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"mode": "test"}, "mode must be one of"),
        ({"backend": "opencv"}, "backend must be one of"),
        ({"device": "gpu"}, "device must be"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"workers": -1}, "workers must be"),
        ({"resize_size": 100, "image_size": 224}, "resize_size >= image_size"),
        ({"crop_scale": (0.5, 0.1)}, "crop_scale"),
        ({"crop_ratio": (0, 1)}, "crop_ratio"),
        ({"drop_last": 1}, "drop_last"),
    ],
)
def test_config_rejects_bad_values_with_a_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        LoaderConfig(**{"mode": "train", **overrides})


def test_config_defaults():
    train, evaluate = LoaderConfig(mode="train"), LoaderConfig(mode="eval")
    assert train.drops_last and not evaluate.drops_last
    assert evaluate.eval_resize == 256 and LoaderConfig(mode="eval", image_size=112).eval_resize == 128
    assert LoaderConfig(mode="eval", resize_size=240).eval_resize == 240
    assert train.workers >= 1


# --- crop draws -----------------------------------------------------------------------------------------


def test_crop_windows_follow_random_resized_crop_rules():
    n = 4000
    widths = np.random.default_rng(1).integers(20, 400, n)
    heights = np.random.default_rng(2).integers(20, 400, n)
    draws = draw_crops(seed=0, epoch=0, batch=0, n=n)
    left, top, w, h = crop_windows(draws, widths, heights, (0.08, 1.0), (3 / 4, 4 / 3)).T
    assert (left >= 0).all() and (top >= 0).all() and (w >= 1).all() and (h >= 1).all()
    assert (left + w <= widths).all() and (top + h <= heights).all()
    area = w * h / (widths * heights)
    assert 0.06 < area.min() and area.max() <= 1.0 + 1e-9  # rounding of w and h lets area dip a little below 0.08
    ratio = w / h
    assert ((ratio > 0.6) & (ratio < 1.6)).mean() > 0.99
    assert 0.45 < draws.flip.mean() < 0.55


def test_crop_windows_fall_back_to_a_centred_crop():
    # A 1000x10 strip: no window of ratio 3/4..4/3 fits, so torchvision takes the centre trimmed to ratio 4/3.
    draws = draw_crops(0, 0, 0, 3)
    windows = crop_windows(draws, np.array([1000] * 3), np.array([10] * 3), (0.9, 1.0), (3 / 4, 4 / 3))
    assert windows.tolist() == [[493, 0, 13, 10]] * 3


def test_crop_draws_are_a_pure_function_of_seed_epoch_batch():
    a, b = draw_crops(3, 5, 7, 10), draw_crops(3, 5, 7, 10)
    assert np.array_equal(a.area, b.area) and np.array_equal(a.flip, b.flip)
    assert not np.array_equal(a.area, draw_crops(3, 6, 7, 10).area)
    assert not np.array_equal(a.area, draw_crops(4, 5, 7, 10).area)


# --- JPEG header check ----------------------------------------------------------------------------------


def test_jpeg_size_reads_real_headers(shards):
    index = shards.load_index("train")
    for i in range(len(index)):
        data = payload(shards, i)
        assert jpeg_size(data) == Image.open(io.BytesIO(data)).size
    assert jpeg_size(data + b"\0" * 7) == Image.open(io.BytesIO(data)).size  # zero padding is tolerated


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[: len(d) // 2], "no end-of-image"),
        (lambda d: d[: len(d) // 2] + b"\0" * (len(d) - len(d) // 2), "no end-of-image"),
        (lambda d: b"\0" * 8 + d[8:], "not a JPEG"),
        (lambda d: d[:20] + b"\x00" * 40 + d[60:], "damaged header"),
        (lambda d: b"PNG" + d, "not a JPEG"),
    ],
)
def test_jpeg_size_rejects_damaged_files(shards, damage, message):
    with pytest.raises(ValueError, match=message):
        jpeg_size(damage(payload(shards, 0)))


# --- normalization --------------------------------------------------------------------------------------


def test_to_inputs_is_imagenet_normalization_in_channels_last():
    images = torch.randint(0, 256, (3, 5, 7, 3), dtype=torch.uint8)
    inputs = to_inputs(images, CPU)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = (images.permute(0, 3, 1, 2).float() / 255 - mean) / std
    assert inputs.shape == (3, 3, 5, 7) and inputs.dtype == torch.float32
    assert inputs.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(inputs, expected, rtol=0, atol=1e-5)
    assert torch.equal(to_images(inputs), images)
    with pytest.raises(ValueError, match="uint8"):
        to_inputs(images.float(), CPU)


def _record_conversion_threads(monkeypatch) -> list[int]:
    """torch's intra-op thread count at each normalization's addcmul, from here on."""
    seen, addcmul = [], torch.addcmul

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return addcmul(*args, **kwargs)

    monkeypatch.setattr(torch, "addcmul", recording)
    return seen


def test_cpu_conversion_runs_on_the_threads_it_is_given_with_the_same_values(monkeypatch):
    images = torch.randint(0, 256, (4, 96, 96, 3), dtype=torch.uint8)
    before = torch.get_num_threads()
    seen = _record_conversion_threads(monkeypatch)
    alone = to_inputs(images, CPU, threads=1)
    assert torch.get_num_threads() == before  # restored
    assert torch.equal(alone, to_inputs(images, CPU))
    to_inputs(images, CPU, threads=before + 6)  # a cap: never more threads than torch was set to
    assert seen == [1, before, before]


def test_conversion_threads_are_the_cpus_the_decoders_leave(monkeypatch):
    monkeypatch.setattr(normalize, "available_cpus", lambda: 2)
    assert [normalize.conversion_threads(w) for w in (0, 1, 2, 5)] == [2, 1, 1, 1]
    monkeypatch.setattr(normalize, "available_cpus", lambda: 16)
    assert normalize.conversion_threads(2) == 14


def test_loader_converts_on_the_threads_its_workers_leave(shards, monkeypatch):
    monkeypatch.setattr(normalize, "available_cpus", lambda: 1)  # one CPU, decoded here: one conversion thread
    loader = make_loader(shards, "train", LoaderConfig(mode="eval", device="cpu", workers=0, batch_size=4))
    assert loader.conversion_threads == 1
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = _record_conversion_threads(monkeypatch)
        batches = list(loader.epoch(np.arange(8), 0))
        assert len(batches) == 2 and seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


# --- resolving backend and device -----------------------------------------------------------------------


def test_backend_and_device_are_resolved_once(shards, monkeypatch):
    assert resolve_device("cpu") == CPU
    assert resolve_backend("auto", CPU) == "pil"  # DALI only pays off when it decodes on a GPU
    loader = make_loader(shards, "train", LoaderConfig(mode="eval", device="cpu", workers=0))
    assert (loader.backend, loader.device, loader.skipped) == ("pil", CPU, 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="--device gpu: choose auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    assert resolve_device("auto") == CPU
    monkeypatch.setattr(factory, "dali_available", lambda: False)
    with pytest.raises(UserError, match="DALI is not installed"):
        resolve_backend("dali", CPU)


def test_missing_split_or_shard_is_a_user_error(shards, tmp_path):
    with pytest.raises(UserError, match="split 'val' has no samples"):
        make_loader(shards, "val", config("eval"))
    broken = copy_shards(shards, tmp_path / "copy")
    (broken.root / "train" / "shard-000002.tar").unlink()
    with pytest.raises(Fault, match="shard-000002.tar: shard listed in the train index is missing"):
        make_loader(broken, "train", config("eval"))


def test_order_is_validated(shards):
    loader = make_loader(shards, "train", config("eval"))
    with pytest.raises(ValueError, match="split has 30 samples"):
        list(loader.epoch(np.array([0, 30])))
    with pytest.raises(ValueError, match="1-D array"):
        list(loader.epoch(np.zeros((2, 2), dtype=np.int64)))
    assert run_epoch(loader, np.array([], dtype=np.int64))[2] == []


# --- the PIL backend ------------------------------------------------------------------------------------


def test_eval_equals_torchvision_resize_and_center_crop(shards):
    loader = make_loader(shards, "train", config("eval"))
    order = np.arange(len(loader.index))
    inputs, labels, _ = run_epoch(loader, order)
    expected = torch.stack([reference_eval(payload(shards, int(i)), loader.config.eval_resize, SIZE) for i in order])
    assert (to_images(inputs).int() - expected.int()).abs().max() <= 1
    assert torch.equal(labels, torch.from_numpy(loader.index.labels[order]).long())


def test_eval_keeps_the_last_partial_batch_and_labels_follow_the_order(shards):
    loader = make_loader(shards, "train", config("eval", batch_size=7))
    order = np.random.default_rng(0).permutation(30)[:23]
    inputs, labels, sizes = run_epoch(loader, order)
    assert sizes == [7, 7, 7, 2] and loader.num_batches(23) == len(loader.batches_in(order)) == 4
    assert labels.dtype == torch.int64 and labels.tolist() == loader.index.labels[order].tolist()
    assert inputs.shape == (23, 3, SIZE, SIZE) and inputs.dtype == torch.float32


@pytest.mark.parametrize("drop_last, sizes", [(None, [8, 8, 8, 8, 8]), (False, [8, 8, 8, 8, 8, 5])])
def test_train_drops_the_last_partial_batch_unless_told(shards, drop_last, sizes):
    loader = make_loader(shards, "train", config("train", drop_last=drop_last))
    order = np.random.default_rng(1).integers(0, 30, 45)  # oversampled: repeats, like an ROS epoch
    _, labels, got = run_epoch(loader, order)
    assert got == sizes and loader.num_batches(45) == len(sizes)
    assert labels.tolist() == loader.index.labels[order[: sum(sizes)]].tolist()


def test_train_is_reproducible_per_epoch_and_independent_of_workers(shards):
    order = np.random.default_rng(2).permutation(30)
    serial = make_loader(shards, "train", config("train", seed=5))
    parallel = make_loader(shards, "train", config("train", seed=5, workers=2))
    first, labels, _ = run_epoch(serial, order, epoch=1)
    again, labels_again, _ = run_epoch(parallel, order, epoch=1)
    assert torch.equal(first, again) and torch.equal(labels, labels_again)
    other, _, _ = run_epoch(serial, order, epoch=2)
    assert not torch.equal(first, other)
    evaluated, _, _ = run_epoch(make_loader(shards, "train", config("eval")), order[:24])
    assert not torch.allclose(first, evaluated)  # the train transform really is random


def test_train_crop_is_torchvision_resized_crop_of_the_drawn_window(shards):
    loader = make_loader(shards, "train", config("train", batch_size=6))
    order = np.arange(6)
    images = next(iter(loader.epoch_images(order, epoch=3)))[0]
    draws = draw_crops(0, 3, 0, 6)
    sizes = np.array([Image.open(io.BytesIO(payload(shards, i))).size for i in order])
    windows = crop_windows(draws, sizes[:, 0], sizes[:, 1], (0.08, 1.0), (3 / 4, 4 / 3))
    for k, (left, top, w, h) in enumerate(windows.tolist()):
        image = v2.PILToTensor()(Image.open(io.BytesIO(payload(shards, k))).convert("RGB"))
        expected = v2.functional.resized_crop(image, top, left, h, w, [SIZE, SIZE], antialias=True)
        if draws.flip[k]:
            expected = expected.flip(-1)
        assert (images[k].permute(2, 0, 1).int() - expected.int()).abs().float().mean() < 1.5


def test_an_abandoned_epoch_does_not_disturb_the_next(shards):
    loader = make_loader(shards, "train", config("train", workers=2))
    order = np.arange(30)
    for _ in loader.epoch(order, 0):
        break
    _, labels, sizes = run_epoch(loader, order, 0)
    assert sizes == [8, 8, 8] and labels.tolist() == loader.index.labels[:24].tolist()


# --- corrupt samples ------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_sample_is_an_error_naming_shard_and_key(shards, tmp_path, workers):
    broken = copy_shards(shards, tmp_path / "copy")
    shard, key = overwrite_payload(broken, 11, at=2, data=b"\x00" * 40)
    loader = make_loader(broken, "train", config("eval", workers=workers))
    with pytest.raises(Fault, match=f"{shard}: sample '{key}' has a damaged header"):
        run_epoch(loader, np.arange(30))


def test_corrupt_sample_is_skipped_and_counted_when_asked(shards, tmp_path, caplog):
    broken = copy_shards(shards, tmp_path / "copy")
    _, key = overwrite_payload(broken, 11, at=-40, data=b"\x00" * 40)  # the tail: cut off, as a decoder sees it
    loader = make_loader(broken, "train", config("eval", skip_corrupt=True, workers=2))
    order = np.arange(30)
    with caplog.at_level(logging.WARNING):
        inputs, labels, sizes = run_epoch(loader, order)
    assert loader.skipped == 1 and sizes == [8, 7, 8, 6]
    assert labels.tolist() == loader.index.labels[np.delete(order, 11)].tolist()
    assert key in caplog.text
    run_epoch(loader, order)
    assert loader.skipped == 2  # counted over epochs


def test_truncated_shard_names_the_cut_off_sample(shards, tmp_path):
    broken = copy_shards(shards, tmp_path / "copy")
    index = broken.load_index("train")
    victim = int(np.flatnonzero(index.shard_ids == 1)[2])
    shard, key = truncate_in(broken, victim)
    with pytest.raises(Fault, match=f"{shard}: sample '{key}' is cut off"):
        run_epoch(make_loader(broken, "train", config("train")), np.arange(30))
    loader = make_loader(broken, "train", config("eval", skip_corrupt=True))
    _, labels, _ = run_epoch(loader, np.arange(30))
    lost = (index.shard_ids == 1) & (np.arange(30) >= victim)  # that sample and the rest of its shard
    assert loader.skipped == lost.sum() and len(labels) == 30 - lost.sum()


# --- eval_inputs: the eval transform for photos outside a shard (predict) ----------------------------------


def test_eval_inputs_handles_real_camera_files(shards, data_dir):
    names = ["african_elephants.jpg", "african_elephants_bw.jpg", "african_elephants_cmyk.jpg",
             "african_elephants_with_exif_orientation.jpg"]
    jpegs = [(data_dir / "edge-cases" / name).read_bytes() for name in names]
    transform = config("eval")
    inputs = eval_inputs(jpegs, transform, CPU)  # full-size photos: grey, CMYK, stored rotated
    assert inputs.shape == (4, 3, SIZE, SIZE) and torch.isfinite(inputs).all()
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(jpegs[3])))
    expected = reference_eval_tensor(upright, transform.eval_resize, SIZE)
    # PIL decodes these DCT-scaled (1/8 of 3-5 MP) before resampling: close to, not equal to, the reference.
    assert (to_images(inputs[3:])[0].int() - expected.int()).abs().float().mean() < 3


def test_full_frame_eval_squeezes_the_whole_frame(shards, data_dir):
    photo = (data_dir / "edge-cases" / "ocelot.jpg").read_bytes()
    full = eval_inputs([photo], config("eval", eval_crop="full"), CPU)
    center = eval_inputs([photo], config("eval"), CPU)
    image = Image.open(io.BytesIO(photo)).convert("RGB")
    expected = v2.Compose([v2.PILToTensor(), v2.Resize((SIZE, SIZE), antialias=True)])(image).permute(1, 2, 0)
    assert (to_images(full)[0].int() - expected.int()).abs().float().mean() < 3  # DCT-scaled decode: close
    assert (to_images(center)[0].int() - expected.int()).abs().float().mean() > 5  # the centre crop differs
    with pytest.raises(ValueError, match="eval_crop"):
        config("eval", eval_crop="middle")


def test_eval_inputs_match_the_eval_epoch_and_name_bad_input(shards):
    order = np.arange(10)
    inputs = eval_inputs([payload(shards, i) for i in order], config("eval", workers=2), CPU)
    evaluated, _, _ = run_epoch(make_loader(shards, "train", config("eval")), order)
    assert torch.equal(inputs, evaluated)
    assert eval_inputs([], config("eval"), CPU).shape == (0, 3, SIZE, SIZE)
    with pytest.raises(UserError, match="image 1 of 2 cannot be decoded"):
        eval_inputs([payload(shards, 0), b"not a jpeg"], config("eval"), CPU)


# --- camtrap-fast bench loader --------------------------------------------------------------------------


def test_bench_loader_json_reports_images_and_class_counts(shards, cli):
    code, out, err = cli("bench", "loader", shards.root, "--backend", "pil", "--device", "cpu", "--workers", "0",
                         "--batch-size", "4", "--image-size", "32", "--epochs", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"images", "seconds", "images_per_s", "class_counts"}
    assert result["images"] == 2 * 28  # two epochs of 30 samples, last partial batch dropped
    assert sum(result["class_counts"].values()) == result["images"]
    assert list(result["class_counts"]) == list(shards.classes) and result["images_per_s"] > 0


def test_bench_loader_uses_the_sampler_and_prints_a_summary(shards, cli):
    code, out, err = cli("bench", "loader", shards.root, "--backend", "pil", "--device", "cpu", "--workers", "0",
                         "--batch-size", "5", "--image-size", "32", "--sampling", "balanced:5")
    assert code == 0, err
    assert "images/s" in out and all(f"{name}" in out for name in shards.classes)
    code, out, err = cli("bench", "loader", shards.root, "--sampling", "balanced:5", "--json", "--batch-size", "5",
                         "--backend", "pil", "--device", "cpu", "--workers", "0", "--image-size", "32")
    assert json.loads(out)["class_counts"] == {name: 5 for name in shards.classes}
    code, _, err = cli("bench", "loader", shards.root, "--device", "cpu", "--sampling", "nonsense")
    assert code == 2 and "nonsense" in err


# --- GPU --------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pil_backend_on_cuda_matches_cpu(shards):
    order = np.arange(30)
    on_cpu, labels_cpu, _ = run_epoch(make_loader(shards, "train", config("eval")), order)
    loader = make_loader(shards, "train", config("eval", device="cuda", workers=2))
    on_gpu, labels_gpu, _ = run_epoch(loader, order)
    assert on_gpu.device.type == "cuda" and labels_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-5)
    assert torch.equal(labels_gpu.cpu(), labels_cpu)


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_mode_yields_the_plans_class_totals(shards, workers):
    """Remote shards (here `pipe:cat`, the way webdataset opens http/s3 URLs): same per-class totals as the plan."""
    from camtrap_fast.sampling import parse_sampling, plan_sampling

    index = shards.load_index("train")
    counts = dict(zip(shards.classes, np.bincount(index.labels, minlength=shards.num_classes).tolist()))
    plan = plan_sampling(counts, parse_sampling("ros:60,rus:70"))
    urls = [f"pipe:cat {p}" for p in shards.shard_paths("train")]
    with make_loader(shards, "train", config("train", batch_size=16, drop_last=False, workers=workers)) as loader:
        labels = torch.cat([y for x, y in loader.stream(urls, plan, seed=3, epoch=1)])
        assert np.bincount(labels.numpy(), minlength=shards.num_classes).tolist() == list(plan.target)
        again = torch.cat([y for x, y in loader.stream(urls, plan, seed=3, epoch=1)])
        assert torch.equal(labels, again)  # same (seed, epoch), same stream


def test_streaming_skips_and_counts_a_corrupt_sample(shards, tmp_path):
    from camtrap_fast.sampling import parse_sampling, plan_sampling

    broken = copy_shards(shards, tmp_path / "broken")
    overwrite_payload(broken, 0, 0, b"\x00" * 16)  # not a JPEG any more
    index = broken.load_index("train")
    counts = dict(zip(broken.classes, np.bincount(index.labels, minlength=broken.num_classes).tolist()))
    plan = plan_sampling(counts, parse_sampling("none"))
    urls = [str(p) for p in broken.shard_paths("train")]
    with make_loader(broken, "train", config("train", batch_size=8, drop_last=False, workers=0)) as loader:
        with pytest.raises(Fault, match=f"streamed sample '{index.key(0)}'"):
            list(loader.stream(urls, plan, seed=0))
    with make_loader(broken, "train", config("train", batch_size=8, drop_last=False, workers=0,
                                             skip_corrupt=True)) as loader:
        labels = torch.cat([y for x, y in loader.stream(urls, plan, seed=0)])
        assert len(labels) == len(index) - 1 and loader.skipped == 1


# --- DecodedSplits: whole eval splits kept in memory ---------------------------------------------------------


def test_decoded_splits_budget_counts_splits_admitted_but_not_yet_decoded(tiny_shards):
    from camtrap_fast.pipelines.decoded import DecodedLoader, DecodedSplits
    from camtrap_fast.shards.manifest import load_manifest

    manifest = load_manifest(tiny_shards)
    eval_config = LoaderConfig(mode="eval", backend="pil", device="cpu", batch_size=16, image_size=32, workers=0)
    sizes = {s: info.samples * 32 * 32 * 3 for s, info in manifest.splits.items() if info.samples}
    assert len(sizes) == 3
    store = DecodedSplits(budget_bytes=max(sizes.values()) + 1)
    # a run makes all its eval loaders before any epoch: room for one split admits one, not all
    loaders = {s: store.make_loader(manifest, s, eval_config) for s in sizes}
    decoded = [s for s, loader in loaders.items() if isinstance(loader, DecodedLoader)]
    assert len(decoded) == 1 and store.used_bytes == sizes[decoded[0]]
    assert isinstance(store.make_loader(manifest, decoded[0], eval_config), DecodedLoader)  # admitted once
    labels = torch.cat([y for _, y in loaders[decoded[0]].epoch(np.arange(manifest.splits[decoded[0]].samples))])
    assert labels.tolist() == manifest.load_index(decoded[0]).labels.tolist()
    assert store.used_bytes == sizes[decoded[0]] == store.split_images(manifest, decoded[0], eval_config)[0].nbytes
