"""The PIL backend's ring of shared-memory batch buffers: a batch the caller holds stays intact until it asks
for the next one (also across an epoch boundary), and the ring changes no pixel."""

from __future__ import annotations

import numpy as np

from camtrap_fast.pipelines import LoaderConfig, make_loader
from camtrap_fast.shards.manifest import load_manifest


def _config(workers: int) -> LoaderConfig:
    return LoaderConfig(mode="train", backend="pil", device="cpu", batch_size=4, image_size=32, workers=workers)


def test_a_held_batch_stays_intact_while_the_next_ones_are_built(tiny_shards):
    manifest = load_manifest(tiny_shards)
    # 8 batches: the last one sits in slot 1 of 6, which a ring restarting at slot 0 each epoch would overwrite
    order = np.arange(32) % manifest.splits["train"].samples
    with make_loader(manifest, "train", _config(0)) as loader:  # in-process: the pixels to expect
        expected = [images.numpy().copy() for images, _ in loader.epoch_images(order, 1)]
    with make_loader(manifest, "train", _config(2)) as loader:
        held = None
        for k, (images, _) in enumerate(loader.epoch_images(order, 1)):
            np.testing.assert_array_equal(images.numpy(), expected[k])
            if held is not None:  # the batch before, still referenced while this one arrived
                np.testing.assert_array_equal(held.numpy(), expected[k - 1])
            held = images
        last = held
        for k, (images, _) in enumerate(loader.epoch_images(order, 1)):  # the next epoch
            if k == 0:  # its first batch arrived while the last one of the epoch before was still held
                np.testing.assert_array_equal(last.numpy(), expected[-1])
            np.testing.assert_array_equal(images.numpy(), expected[k])
