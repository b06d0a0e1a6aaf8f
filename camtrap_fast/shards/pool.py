"""Encoding in worker processes, results in input order (that order is what makes shards deterministic)."""

from __future__ import annotations

import multiprocessing
from collections import deque

from camtrap_fast.ingest.records import Rejection
from camtrap_fast.processes import die_with_parent
from camtrap_fast.shards.encode import EncodeConfig, EncodeRejected
from camtrap_fast.shards.samples import encode_sample


class EncoderPool:
    """`encode(tasks)`: an iterator of results (bytes, crops or a Rejection), one per task, in task order.

    A task is (path, boxes) or (path, boxes, data): `data` holds the image's bytes when they were fetched
    (remote images, fetch.py), else the worker reads `path` itself."""

    def __init__(self, config: EncodeConfig, workers: int):
        self.config = config
        self.workers = workers
        self.pool = None

    def __enter__(self) -> "EncoderPool":
        if self.workers > 1:
            self.pool = multiprocessing.get_context("fork").Pool(self.workers, _init_worker, (self.config,))
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def encode(self, tasks):
        if self.pool is None:
            _init_worker(self.config)
            return map(_encode_one, tasks)
        return self._bounded(tasks)

    def _bounded(self, tasks):
        # Not Pool.imap: its feeder thread drains `tasks` as fast as it can, and fetched images (bytes) would then
        # pile up in memory. A window of a few tasks per worker keeps every worker busy and memory flat.
        window: deque = deque()
        for task in tasks:
            window.append(self.pool.apply_async(_encode_one, (task,)))
            if len(window) >= 8 * self.workers:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()


_worker_config: EncodeConfig | None = None


def _init_worker(config: EncodeConfig) -> None:
    global _worker_config
    _worker_config = config
    if multiprocessing.parent_process() is not None:  # a pool worker: end with a killed `shard`
        die_with_parent()


def _encode_one(task):
    if isinstance(task, Rejection):  # the fetch already failed: nothing to decode
        return task
    try:
        return encode_sample(task, _worker_config)
    except EncodeRejected as rejected:
        return Rejection(task[0], rejected.reason, rejected.detail)
