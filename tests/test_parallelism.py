"""The split of the CPUs between loader workers and torch threads: chosen per machine, recorded, resumable."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from camtrap_fast.pipelines import LoaderOptions
from camtrap_fast.train.config import Phase1Config, TrainConfig
from camtrap_fast.train.parallelism import CPUS_PER_WORKER, WORKER_NICE, choose_parallelism, torch_threads_for
from camtrap_fast.train.rundir import Run
from tests.test_rundir import manifest

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("cpus, workers", [(1, 1), (2, 1), (8, 1), (9, 2), (16, 2), (64, 8)])
def test_cpu_training_keeps_every_core_for_torch_and_one_worker_per_eight(cpus, workers):
    split = choose_parallelism(CPU, cpus=cpus)
    assert (split.workers, split.torch_threads, split.cpus) == (workers, cpus, cpus)
    assert split.automatic == ("workers", "torch_threads") and split.worker_nice == WORKER_NICE > 0
    assert CPUS_PER_WORKER == 8


def test_on_a_gpu_the_loader_gets_the_cpus_and_is_not_niced():
    split = choose_parallelism(CUDA, cpus=32)
    assert split.workers == 16 and split.worker_nice == 0
    assert split.torch_threads == torch.get_num_threads()  # torch's own default, untouched


def test_given_numbers_are_kept():
    split = choose_parallelism(CPU, workers=0, threads=3, cpus=2)
    assert (split.workers, split.torch_threads, split.automatic) == (0, 3, ())
    assert choose_parallelism(CPU, threads=1, cpus=2).automatic == ("workers",)
    assert "1 workers (auto), 1 torch threads on 2 CPUs" == choose_parallelism(CPU, threads=1, cpus=2).describe()


def test_torch_threads_are_restored_after_training():
    before = torch.get_num_threads()
    with torch_threads_for(choose_parallelism(CPU, threads=1, cpus=2)):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_loader_options_take_the_runs_split_only_when_automatic():
    auto, given = LoaderOptions(), LoaderOptions(workers=3)
    assert auto.for_mode("train", 8, "cpu", workers=1, worker_nice=10).workers == 1
    assert auto.for_mode("train", 8, "cpu", workers=1, worker_nice=10).worker_nice == 10
    assert given.for_mode("train", 8, "cpu", workers=1).workers == 3
    assert auto.for_mode("eval", 8, "cpu").workers >= 1  # eval and predict outside a run: every CPU (<= 16)


def test_config_keeps_automatic_and_environment_records_the_choice(tmp_path):
    shards = manifest(tmp_path / "shards")
    config = TrainConfig(shards=shards.root.absolute(), phase1=Phase1Config(epochs=3))
    run = Run(tmp_path / "run")
    split = choose_parallelism(CPU, cpus=2)
    run.start(config, shards, CPU, split.as_dict())
    saved = json.loads(run.config_path.read_text())
    assert saved["threads"] is None and saved["loader"]["workers"] is None  # what was asked: automatic
    assert json.loads((run.root / "environment.json").read_text())["parallelism"] == {
        "workers": 1, "torch_threads": 2, "cpus": 2, "automatic": ["workers", "torch_threads"],
        "worker_nice": WORKER_NICE}
    # Another machine's (or the user's) split changes speed, not what is trained: the resume goes ahead.
    run.check_resume(dataclasses.replace(config, threads=7, loader=LoaderOptions(workers=5)), shards)


def _batches(manifest, nice: int, workers: int) -> list[np.ndarray]:
    from camtrap_fast.pipelines import LoaderConfig, make_loader

    config = LoaderConfig(mode="train", backend="pil", device="cpu", batch_size=4, image_size=32, workers=workers,
                          worker_nice=nice)
    with make_loader(manifest, "train", config) as loader:
        return [images.numpy().copy() for images, _ in loader.epoch_images(np.arange(len(loader.index)), 1)]


def test_niced_workers_deliver_the_same_batches(tiny_shards):
    from camtrap_fast.shards.manifest import load_manifest

    shards = load_manifest(tiny_shards)
    expected = _batches(shards, 0, 0)
    for got, want in zip(_batches(shards, WORKER_NICE, 2), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_worker_nice_is_applied_in_the_workers_only():
    before = os.nice(0)
    from camtrap_fast.pipelines.pil_backend import _start_worker

    pid = os.fork()
    if pid == 0:  # in a child, as a DataLoader worker would be
        _start_worker(3)
        os._exit(0 if os.nice(0) == before + 3 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.nice(0) == before
