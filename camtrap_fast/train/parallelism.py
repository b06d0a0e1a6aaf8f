"""How a training process splits the machine's CPUs between the loader's workers and torch's own threads.

On a CPU-only machine phase-1 training and the loader run on the same cores. The model needs every core:
ResNet-18 costs 20-100x the loader's CPU per image (bench/README.md, training throughput: about 13 ms of CPU
per 64-px image to train, 0.2 ms to load), so torch keeps one intra-op thread per CPU and the loader gets
one worker process per 8 CPUs, at least one: enough to keep its prefetch queue full, and a worker whose queue
is full sleeps instead of taking cycles from the model. (Decoding in the training process itself, 0 workers,
serializes loading with training and cost 2-7 % of the throughput.) On CUDA the model no longer needs the
CPUs, so the loader gets them all (every CPU, at most `MAX_WORKERS`, as `default_workers`), and torch keeps its default.

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
WORKER_NICE = 10  # CPU training: the workers' niceness (module docstring)


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
