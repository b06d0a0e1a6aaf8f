"""The DALI backend in DALI's CPU mode (no GPU needed): same contract as the PIL backend, and the same pixels.

GPU-only checks (nvJPEG through the "mixed" decoder) are marked `gpu` and skipped without CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nvidia.dali")

from camtrap_fast.errors import Fault  # noqa: E402
from camtrap_fast.pipelines import LoaderConfig, make_loader  # noqa: E402
from pipeline_fixtures import copy_shards, make_photo_shards, overwrite_payload, payload, truncate_in  # noqa: E402

SIZE = 48


@pytest.fixture(scope="module")
def shards(tmp_path_factory, data_dir):
    return make_photo_shards(tmp_path_factory.mktemp("dali"), data_dir)  # 30 photos, 3 classes, 4 shards


def config(mode: str, backend: str = "dali", **overrides) -> LoaderConfig:
    base = dict(backend=backend, device="cpu", batch_size=8, image_size=SIZE, workers=1)
    return LoaderConfig(mode=mode, **{**base, **overrides})


def run_epoch(loader, order, epoch=0):
    batches = list(loader.epoch(order, epoch))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]), [len(y) for _, y in batches]


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_dali_and_pil_give_the_same_pixels(shards, mode):
    order = np.random.default_rng(0).integers(0, 30, 32)
    dali, dali_labels, _ = run_epoch(make_loader(shards, "train", config(mode)), order, epoch=4)
    pil, pil_labels, _ = run_epoch(make_loader(shards, "train", config(mode, "pil", workers=0)), order, epoch=4)
    if mode == "eval":  # the whole-frame eval crop too
        full_dali, _, _ = run_epoch(make_loader(shards, "train", config(mode, eval_crop="full")), order)
        full_pil, _, _ = run_epoch(make_loader(shards, "train", config(mode, "pil", workers=0, eval_crop="full")), order)
        assert (full_dali - full_pil).abs().mean() < 0.02 and not torch.equal(full_pil, pil)
    assert torch.equal(dali_labels, pil_labels)
    assert dali.shape == pil.shape == (32, 3, SIZE, SIZE) and dali.is_contiguous(memory_format=torch.channels_last)
    # Same windows, same flips; only the two bilinear resamplers differ (normalized units: 0.02 ~ 1 grey level).
    difference = (dali - pil).abs()
    assert difference.mean() < 0.02 and difference.mean(dim=(1, 2, 3)).max() < 0.05


def test_labels_follow_the_order_and_the_last_batch_is_kept_in_eval(shards):
    loader = make_loader(shards, "train", config("eval", batch_size=7))
    assert (loader.backend, loader.device.type) == ("dali", "cpu")
    order = np.random.default_rng(1).permutation(30)[:23]
    _, labels, sizes = run_epoch(loader, order)
    assert sizes == [7, 7, 7, 2] and labels.tolist() == loader.index.labels[order].tolist()
    assert labels.dtype == torch.int64


def test_train_drops_the_last_partial_batch_and_replays_epochs_exactly(shards):
    loader = make_loader(shards, "train", config("train"))
    order = np.random.default_rng(2).integers(0, 30, 45)
    epochs = [run_epoch(loader, order, epoch) for epoch in (0, 1, 2)]  # one pipeline, reset between epochs
    assert [e[2] for e in epochs] == [[8] * 5] * 3
    assert epochs[0][1].tolist() == loader.index.labels[order[:40]].tolist()
    assert not torch.equal(epochs[0][0], epochs[1][0])
    fresh = make_loader(shards, "train", config("train", drop_last=False))
    replay, _, sizes = run_epoch(fresh, order, epoch=1)  # a new pipeline, straight to epoch 1
    assert sizes == [8] * 5 + [5] and torch.equal(replay[:40], epochs[1][0])


def test_parallel_feed_workers_give_identical_batches(shards):
    order = np.random.default_rng(3).permutation(30)
    serial, labels, _ = run_epoch(make_loader(shards, "train", config("eval")), order)
    loader = make_loader(shards, "train", config("eval", feed_workers=1))  # DALI's parallel external source
    for epoch in range(2):
        parallel, parallel_labels, sizes = run_epoch(loader, order, epoch)
        assert sizes == [8, 8, 8, 6]  # padded to full batches for the workers, trimmed here
        assert torch.equal(parallel, serial) and torch.equal(parallel_labels, labels)


def test_an_abandoned_epoch_does_not_disturb_the_next(shards):
    loader = make_loader(shards, "train", config("train"))
    order = np.arange(30)
    full, _, _ = run_epoch(loader, order, 0)
    for _ in loader.epoch(order, 0):
        break
    again, _, sizes = run_epoch(loader, order, 0)
    assert sizes == [8, 8, 8] and torch.equal(again, full)


def test_corrupt_header_is_an_error_naming_shard_and_key(shards, tmp_path):
    broken = copy_shards(shards, tmp_path / "copy")
    shard, key = overwrite_payload(broken, 17, at=2, data=b"\x00" * 40)
    strict = make_loader(broken, "train", config("train", feed_workers=1))  # the parallel feed flags it too
    with pytest.raises(Fault, match=f"{shard}: sample '{key}' has a damaged header"):
        run_epoch(strict, np.arange(30))
    assert len(run_epoch(strict, np.arange(16))[1]) == 16  # the loader stays usable after the error
    loader = make_loader(broken, "train", config("eval", skip_corrupt=True))
    _, labels, sizes = run_epoch(loader, np.arange(30))
    assert loader.skipped == 1 and sizes == [8, 8, 7, 6]
    assert labels.tolist() == loader.index.labels[np.delete(np.arange(30), 17)].tolist()


def test_decoder_failure_past_the_header_check_is_named_or_skipped(shards, tmp_path):
    broken = copy_shards(shards, tmp_path / "copy")
    original = payload(broken, 12)
    # Markers and lengths stay valid, so the header check passes, but libjpeg refuses the Huffman table counts.
    at = original.index(b"\xff\xc4") + 5
    shard, key = overwrite_payload(broken, 12, at=at, data=b"\xff" * 16)
    with pytest.raises(Fault, match=f"{shard}: sample '{key}' cannot be decoded"):
        run_epoch(make_loader(broken, "train", config("eval", feed_workers=1)), np.arange(30))
    loader = make_loader(broken, "train", config("train", skip_corrupt=True, drop_last=False))
    _, labels, sizes = run_epoch(loader, np.arange(30))  # the pipeline is rebuilt and resumes at that batch
    assert loader.skipped == 1 and sizes == [8, 7, 8, 6]
    assert labels.tolist() == loader.index.labels[np.delete(np.arange(30), 12)].tolist()


def test_truncated_shard_is_an_error_naming_the_sample(shards, tmp_path):
    broken = copy_shards(shards, tmp_path / "copy")
    index = broken.load_index("train")
    victim = int(np.flatnonzero(index.shard_ids == 2)[0])
    shard, key = truncate_in(broken, victim)
    with pytest.raises(Fault, match=f"{shard}: sample '{key}' is cut off"):
        run_epoch(make_loader(broken, "train", config("eval")), np.arange(30))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_mixed_decoder_on_gpu_matches_cpu_mode(shards, mode):
    order = np.random.default_rng(4).integers(0, 30, 40)
    on_cpu, labels_cpu, _ = run_epoch(make_loader(shards, "train", config(mode)), order, 2)
    loader = make_loader(shards, "train", config(mode, device="cuda", workers=2))
    assert loader.feed_workers == 2  # spawned feed processes on CUDA
    on_gpu, labels_gpu, _ = run_epoch(loader, order, 2)
    assert on_gpu.device.type == "cuda" and torch.equal(labels_gpu.cpu(), labels_cpu)
    assert (on_gpu.cpu() - on_cpu).abs().mean() < 0.05  # nvJPEG's IDCT and upsampling differ slightly from libjpeg's
    assert make_loader(shards, "train", LoaderConfig(mode=mode, device="cuda")).backend == "dali"
