"""How a training process splits the machine's CPUs between the loader's workers and torch's own threads.

On a CPU-only machine phase-1 training and the loader share the cores, and the model needs nearly all of
them: ResNet-18 costs about 15 ms of CPU per 64-px image to train and 330 ms per 224-px one on the 2-core
dev VM, the loader 0.2 ms and ~1 ms (bench/README.md, training throughput). So torch keeps one intra-op
thread per CPU and the loader one worker process per 8 CPUs, at least one: enough to keep its prefetch
queue full, and a worker whose queue is full sleeps. The workers run at a small niceness (`WORKER_NICE`):
a worker that preempts one of torch's threads stalls the whole parallel operation (2 un-niced workers on 2
cores trained at 0.70 of the in-memory rate); niced, it fills the moments the model leaves a core idle.
Higher niceness only risks starving the worker when other programs load the machine. On CUDA the model no
longer needs the CPUs, so the loader gets them all (every CPU, at most `MAX_WORKERS`, as `default_workers`),
un-niced, and torch keeps its default.

Either number can be given (`--workers`, `--threads`); a given number is never changed. The split changes
speed, not what is trained: crops are drawn from (seed, epoch, batch), whatever the workers, and torch's
thread count only reorders float sums as another machine's kernels would. So config.json keeps what was
asked (null: automatic), environment.json records what this machine chose, and a resume on a machine that
chooses differently is allowed (`rundir.RESUMABLE_CHANGES`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from camtrap_fast.pipelines.config import MAX_WORKERS, available_cpus

CPUS_PER_WORKER = 8  # CPU training: one loader worker per this many CPUs (module docstring)
WORKER_NICE = 5  # CPU training: the workers' niceness (module docstring)


@dataclass(frozen=True)
class Parallelism:
    workers: int  # PIL: loader worker processes (0: decode in the training process); DALI: decode threads
    torch_threads: int  # torch intra-op threads of the training process
    cpus: int  # CPUs this process may use
    automatic: tuple[str, ...]  # which of "workers", "torch_threads" were chosen here rather than given
    worker_nice: int = 0  # the loader workers' niceness (os.nice)

    def as_dict(self) -> dict:
        return {"workers": self.workers, "torch_threads": self.torch_threads, "cpus": self.cpus,
                "automatic": list(self.automatic), "worker_nice": self.worker_nice}

    def describe(self) -> str:
        def part(name: str, value: int) -> str:
            return f"{value} {name.replace('_', ' ')}" + (" (auto)" if name in self.automatic else "")

        return f"{part('workers', self.workers)}, {part('torch_threads', self.torch_threads)} on {self.cpus} CPUs"


def choose_parallelism(device: torch.device, workers: int | None = None, threads: int | None = None,
                       cpus: int | None = None) -> Parallelism:
    """The split for a training process on `device`; `workers` / `threads` given (not None) are kept as they are."""
    cpus = cpus or available_cpus()
    automatic = tuple(name for name, value in (("workers", workers), ("torch_threads", threads)) if value is None)
    if device.type == "cuda":
        auto_workers, auto_threads, nice = min(cpus, MAX_WORKERS), torch.get_num_threads(), 0
    else:
        auto_workers, auto_threads, nice = max(1, math.ceil(cpus / CPUS_PER_WORKER)), cpus, WORKER_NICE
    return Parallelism(workers if workers is not None else auto_workers,
                       threads if threads is not None else auto_threads, cpus, automatic, nice)


@contextlib.contextmanager
def torch_threads_for(parallelism: Parallelism) -> Iterator[None]:
    """torch's intra-op threads set to the split's for the duration (restored after: `train` may run in a loop)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(parallelism.torch_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def torch_threads(num_threads: int | None, device: torch.device) -> Iterator[None]:
    """torch's intra-op threads set to num_threads (None: 1) for the duration on a CPU device, restored after (the
    phase-2 heads: their ops are small, and more threads only wait for each other)."""
    previous = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(num_threads or 1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
