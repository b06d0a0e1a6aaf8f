"""DecodedSplits: whole splits decoded once by the eval transform and served from memory to every eval loader made
from them (`DecodedLoader`, a third implementation of the `Loader` contract beside DALI and PIL).

The eval transform draws nothing (resize, centre crop), so every run on the same shards at the same crop size
sees the same uint8 images: val every epoch for early stopping, test for the report, and each split once more
for the feature cache. A study's runs share one DecodedSplits, so each split is decoded once per study instead of
once per epoch and run, and its eval loaders start no worker processes. The batches are the same bytes in the same
batches as the backend's, so results do not change. Splits are kept while they fit `budget_bytes`; a split that
does not fit (224-px val at Snapshot Serengeti scale) and any loader with skip_corrupt (whose skipped samples
must be counted per loader) are made by `make_loader` as usual.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from camtrap_fast.devices import resolve_device
from camtrap_fast.pipelines.config import LoaderConfig
from camtrap_fast.pipelines.factory import make_loader
from camtrap_fast.pipelines.loader import Batch, Bounds, Loader
from camtrap_fast.shards.manifest import Manifest

DEFAULT_BUDGET_BYTES = 1 << 30


class DecodedSplits:
    """The shared store. `make_loader` has `pipelines.make_loader`'s signature, so it can stand in for it."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.budget_bytes = budget_bytes
        self._splits: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        # Bytes set aside per split when its first loader is admitted, before it is decoded: a run makes all its
        # eval loaders up front, so counting only decoded splits would admit every one of them against 0 bytes.
        self._reserved: dict[tuple, int] = {}
        self.decoded_images = 0  # images decoded into the store
        self.served_images = 0  # images served from it

    @property
    def used_bytes(self) -> int:
        """Bytes of the admitted splits, decoded or not yet."""
        return sum(self._reserved.values())

    def make_loader(self, manifest: Manifest, split: str, config: LoaderConfig) -> Loader:
        if config.mode != "eval" or config.skip_corrupt:
            return make_loader(manifest, split, config)
        key = self._key(manifest, split, config)
        if key not in self._reserved:
            size = manifest.splits[split].samples * config.image_size ** 2 * 3
            if self.used_bytes + size > self.budget_bytes:
                return make_loader(manifest, split, config)
            self._reserved[key] = size
        return DecodedLoader(self, manifest, split, config)

    @staticmethod
    def _key(manifest: Manifest, split: str, config: LoaderConfig) -> tuple:
        # Everything the eval transform's output depends on; not the seed, batch size, workers or backend.
        return (str(manifest.root.absolute()), manifest.fingerprint, split, config.image_size, config.eval_resize,
                config.eval_crop)

    def split_images(self, manifest: Manifest, split: str, config: LoaderConfig) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 N x S x S x 3 images, int64 labels) of the whole split in index order, decoded on first use."""
        key = self._key(manifest, split, config)
        if key not in self._splits:
            with make_loader(manifest, split, config) as loader:
                count = len(loader.index)
                # Filled in place, batch by batch: concatenating a list of batches would hold the split twice.
                images = np.empty((count, config.image_size, config.image_size, 3), dtype=np.uint8)
                labels = np.empty(count, dtype=np.int64)
                start = 0
                for batch, batch_labels in loader.epoch_images(np.arange(count, dtype=np.int64), 0):
                    stop = start + len(batch_labels)
                    images[start:stop] = batch.cpu().numpy()
                    labels[start:stop] = batch_labels.cpu().numpy()
                    start = stop
            self._splits[key] = (images, labels)
            self.decoded_images += count
        return self._splits[key]


class DecodedLoader(Loader):
    backend = "decoded"

    def __init__(self, store: DecodedSplits, manifest: Manifest, split: str, config: LoaderConfig):
        super().__init__(manifest, split, config, resolve_device(config.device))
        self._store = store

    def _epoch_images(self, order: np.ndarray, epoch: int, bounds: Bounds) -> Iterator[Batch]:
        images, labels = self._store.split_images(self.manifest, self.split, self.config)
        for start, stop in bounds:
            chosen = order[start:stop]
            self._store.served_images += len(chosen)
            yield torch.from_numpy(images[chosen]), torch.from_numpy(labels[chosen])
