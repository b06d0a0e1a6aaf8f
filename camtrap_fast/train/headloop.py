"""The compiled phase-2 step loop (headloop.c), loaded with ctypes; None when it is not built or not usable.

`make setup` builds `_headloop.so` beside this file (Makefile: headloop) for the machine it runs on. The library has
its own register-tiled matmuls and runs each chunk on its own threads (headloop.c says why not BLAS). Before first
use it trains a few steps on one and on two threads and checks them against the torch loop's arithmetic (an ABI
mismatch fails that check): any failure logs why and leaves the caller on its torch loop, which computes the same
thing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path

import torch

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_headloop.so")
ABI = 9
# Threads of the compiled loop when HeadConfig.num_threads is None. Its threads meet at two spin barriers per ~50 us
# step, so they help only while they have the cores to themselves: on the 2-core VM, 2 threads took 2.9-3.4 s for
# the benchmark's 30 epochs against 3.5-4.1 s on 1 when nothing else ran, but 612-660 us a step against 62-68 on 1
# (10x slower) beside one busy process. One thread is the default that never loses; num_threads asks for more.
DEFAULT_THREADS = 1
# headloop_isa()'s bits, as /proc/cpuinfo names them (see headloop.c).
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "bmi2", "f16c")
LOSS_SOFTMAX, LOSS_FOCAL, LOSS_SIGMOID_FOCAL = 0, 1, 2

_P, _I, _F, _L = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_int64
_ARGTYPES = [_P, _I, _L, _L, _P] + [_P] * 9 + [_I] * 5 + [_F, _F, _P, _F, _F, _F, _F, _L, _I, _I, _P, _P]


def cpu_flags() -> set[str] | None:
    """The running CPU's flags from /proc/cpuinfo; None where that cannot be read (then nothing is checked)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        return None
    return None


def missing_isa(built: int, flags: set[str] | None) -> list[str]:
    """The extensions the build uses (headloop_isa bits) that the running CPU lacks."""
    if flags is None:
        return []
    return [name for bit, name in enumerate(ISA_FLAGS) if built >> bit & 1 and name not in flags]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_for(num_threads: int | None) -> int:
    """The compiled loop's thread count: num_threads as configured, else DEFAULT_THREADS capped at the usable cores."""
    if num_threads is not None:
        return num_threads
    return max(1, min(DEFAULT_THREADS, usable_cores()))


def logits_threads_for(num_threads: int | None) -> int:
    """Threads for the validation logits: num_threads as configured, else every usable core (at most 8). Their rows
    are independent, so the threads never wait for each other as the training steps' do at their barriers: a core
    that another process holds slows its share, and the whole is then no slower than one thread. On the 2-core VM
    19,377 validation rows took 8.2-9.4 ms an epoch on one thread."""
    if num_threads is not None:
        return num_threads
    return max(1, min(8, usable_cores()))


@functools.cache
def load() -> HeadLoop | None:
    if not LIBRARY.is_file():
        log.info("phase-2 head: %s is not built (make setup builds it); using the torch loop", LIBRARY.name)
        return None
    try:
        library = ctypes.CDLL(str(LIBRARY))
        if library.headloop_abi() != ABI:
            raise OSError(f"ABI {library.headloop_abi()}, expected {ABI}: rebuild with make setup")
        missing = missing_isa(library.headloop_isa(), cpu_flags())
        if missing:
            raise OSError(f"built for a CPU with {', '.join(missing)}, which this one lacks: rebuild it here with "
                          "make setup")
    except OSError as error:
        log.warning("phase-2 head: cannot load %s (%s); using the torch loop", LIBRARY, error)
        return None
    steps, gather = library.headloop_steps, library.headloop_gather
    logits, matmuls_timed = library.headloop_logits, library.headloop_matmuls_timed
    steps.restype, steps.argtypes = _L, _ARGTYPES
    gather.restype, gather.argtypes = _I, [_P, _I, _L, _L, _P, _I, _P, _I]
    logits.restype, logits.argtypes = _I, [_P, _I, _P, _P, _I, _I, _I, _I]
    matmuls_timed.restype, matmuls_timed.argtypes = ctypes.c_double, [_P, _I, _L, _L, _P] + [_P] * 5 + [_I] * 5
    library.headloop_touched_steps.restype, library.headloop_touched_steps.argtypes = ctypes.c_longlong, []
    library.headloop_set_toucher_test_pause.restype, library.headloop_set_toucher_test_pause.argtypes = None, [_I]
    loop = HeadLoop(steps, gather, logits, matmuls_timed, library.headloop_touched_steps)
    loop.set_toucher_test_pause = library.headloop_set_toucher_test_pause  # tests only (headloop.c says why)
    problem = loop.self_check()
    if problem:
        log.warning("phase-2 head: %s failed its self-check (%s); using the torch loop", LIBRARY.name, problem)
        return None
    return loop


def _address(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


class HeadLoop:
    """One call trains a chunk's batches: see headloop.c for the arithmetic, _FusedHead for the buffers."""

    def __init__(self, steps, gather, logits, matmuls_timed, touched_steps):
        self._steps, self._gather, self._logits, self._matmuls_timed = steps, gather, logits, matmuls_timed
        self.touched_steps = touched_steps  # () -> the steps whose rows a row toucher has read, in this process
        # The dtypes this build converts itself: fp16 needs F16C, which a build for an older x86 lacks (its gather
        # answers -1 and the caller gathers with torch). One row of each, asked once.
        rows = [torch.zeros(1, 8, dtype=dtype) for dtype in (torch.float16, torch.float32)]
        index, out = torch.zeros(1, dtype=torch.int64), torch.empty(1, 8)
        self.gather_dtypes = tuple(row.dtype for row in rows if gather(row.data_ptr(), row.element_size(), 1, 8,
                                                                       index.data_ptr(), 1, out.data_ptr(), 8) == 0)

    def gathers(self, features: torch.Tensor) -> bool:
        """Whether run() and gather() can read these features themselves (else the caller gathers with torch)."""
        return features.dtype in self.gather_dtypes and features.is_contiguous() and features.device.type == "cpu"

    def gather(self, features: torch.Tensor, indices: torch.Tensor, out: torch.Tensor) -> bool:
        """out[i, :D] = features[indices[i]] as fp32 (fp16 or fp32 features, C-contiguous, on the CPU); False:
        the caller gathers instead. An index outside the rows raises IndexError, as index_select would."""
        if not self.gathers(features) or indices.dtype != torch.int64 or not indices.is_contiguous():
            return False
        status = self._gather(features.data_ptr(), features.element_size(), features.shape[0], features.shape[1],
                              indices.data_ptr(), len(indices), out.data_ptr(), out.shape[1])
        if status == -2:
            raise IndexError(f"an epoch order holds a row index outside 0..{features.shape[0] - 1}")
        return status == 0

    def run(self, features: torch.Tensor | None, indices: torch.Tensor | None, inputs: torch.Tensor,
            targets: torch.Tensor, row_scale: torch.Tensor | None, logits: torch.Tensor, dlogits: torch.Tensor,
            theta: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, n: int,
            batch_size: int, loss: int, gamma: float, min_margin: float, class_weights: torch.Tensor | None, lr: float,
            betas: tuple[float, float], eps: float, steps_done: int, threads: int,
            row_loss: torch.Tensor, touch_rows: bool = False) -> tuple[int, float]:
        """Train on n rows in batches on `threads` threads; returns (the steps taken, the sum of their batches'
        losses). The rows are features[indices] (each batch's gathered into inputs' first rows in turn, or for fp16
        features into the call's own fp16 batch buffer;
        gathers(features) must hold and indices be int64, contiguous) or, with features None, inputs[:n] as they
        are. inputs: fp32, C-contiguous rows of width theta's row, a multiple of 16. logits and dlogits: scratch of
        at least batch_size rows (every step reuses their first rows). row_loss: float64 scratch of at least n
        values. touch_rows: a helper thread reads each next step's rows ahead of its gather (headloop.c's row toucher:
        for a core the step threads leave free; the results are the same bits either way).
        An index outside the features' rows raises IndexError before any step."""
        classes = logits.shape[1]
        loss_sum = ctypes.c_double(0.0)
        source = (features.data_ptr(), features.element_size(), features.shape[0], features.shape[1],
                  indices.data_ptr()) if features is not None else (None, 0, 0, 0, None)
        steps = self._steps(*source, inputs.data_ptr(), targets.data_ptr(), _address(row_scale),
                            logits.data_ptr(), dlogits.data_ptr(), theta.data_ptr(), grad.data_ptr(),
                            exp_avg.data_ptr(), exp_avg_sq.data_ptr(), n, batch_size, inputs.shape[1], classes, loss,
                            gamma, min_margin, _address(class_weights), lr, betas[0], betas[1], eps, steps_done,
                            threads, int(touch_rows), row_loss.data_ptr(), ctypes.byref(loss_sum))
        if steps == -2:
            raise IndexError(f"an epoch order holds a row index outside 0..{features.shape[0] - 1}")
        if steps < 0:
            raise ValueError(f"the compiled loop refused rows of width {inputs.shape[1]} (a multiple of 16 is needed) "
                             "or features it cannot read")
        return steps, loss_sum.value

    def logits(self, inputs: torch.Tensor, theta: torch.Tensor, out: torch.Tensor, threads: int) -> None:
        """out (n x classes) = inputs (n x width, C-contiguous, the bias's column of ones included) . theta^T, with
        the training steps' own matmul on `threads` threads. inputs: fp32, or fp16 where half_logits (the same
        logits, bit for bit)."""
        if self._logits(inputs.data_ptr(), inputs.element_size(), theta.data_ptr(), out.data_ptr(), inputs.shape[0],
                        inputs.shape[1], out.shape[1], threads) != 0:
            raise ValueError(f"the compiled loop refused {inputs.dtype} rows of width {inputs.shape[1]} (fp32, or "
                             "fp16 where half_logits; a multiple of 16 wide)")

    @property
    def half_logits(self) -> bool:
        """Whether logits() takes fp16 rows: this build has the fp16 tiles (F16C), as its fp16 gather shows."""
        return torch.float16 in self.gather_dtypes

    def matmuls_timed(self, features: torch.Tensor, indices: torch.Tensor, inputs: torch.Tensor, logits: torch.Tensor,
                      dlogits: torch.Tensor, theta: torch.Tensor, grad: torch.Tensor, n: int, batch_size: int,
                      threads: int) -> float:
        """Seconds of only the two matmuls of run()'s steps over features[indices] (gathers(features), int64
        contiguous indices), each batch's rows gathered untimed into inputs' first rows as run() gathers them."""
        seconds = self._matmuls_timed(features.data_ptr(), features.element_size(), features.shape[0],
                                      features.shape[1], indices.data_ptr(), inputs.data_ptr(), logits.data_ptr(),
                                      dlogits.data_ptr(), theta.data_ptr(), grad.data_ptr(), n, batch_size,
                                      inputs.shape[1], logits.shape[1], threads)
        if seconds == -2.0:
            raise IndexError(f"an epoch order holds a row index outside 0..{features.shape[0] - 1}")
        if seconds < 0:
            raise ValueError("the compiled loop refused these features or rows")
        return seconds

    def self_check(self) -> str | None:
        """Three steps on a small problem against the same steps in torch, on 1 and on 2 threads; a message when
        they differ."""
        generator = torch.Generator().manual_seed(0)
        n, width, classes, batch = 20, 32, 3, 8  # 32: two column vectors of AVX-512, one per thread
        inputs = torch.randn(n, width, generator=generator)
        targets = torch.randint(0, classes, (n,), generator=generator)
        theta = torch.randn(classes * width, generator=generator) * 0.1
        logits, dlogits = torch.empty(n, classes), torch.empty(n, classes)
        expected = theta.clone().view(classes, width)
        m, v = torch.zeros_like(expected), torch.zeros_like(expected)
        for step, start in enumerate(range(0, n, batch), 1):
            x, y = inputs[start : start + batch], targets[start : start + batch]
            d = torch.softmax(x @ expected.T, 1)
            d[torch.arange(len(y)), y] -= 1
            g = d.mul_(batch / len(y)).T @ x
            m.lerp_(g, 0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            denom = (v.sqrt() / (1 - 0.999 ** step) ** 0.5).add_(1e-6)
            expected -= 0.01 / (1 - 0.9 ** step) * m / denom
        start = theta.clone()
        for threads in (1, 2):
            trained = start.clone()
            state = [torch.zeros_like(trained) for _ in range(3)]
            # the rows gathered by the loop itself (in order), as training gathers each chunk
            taken, _ = self.run(inputs, torch.arange(n), torch.empty(n, width), targets, None, logits, dlogits,
                                trained, *state, n, batch, LOSS_SOFTMAX, 0.0, 1e-6, None, 0.01, (0.9, 0.999), 1e-6, 0,
                                threads, torch.empty(n, dtype=torch.float64))
            if taken != 3:
                return f"took {taken} steps on {threads} thread(s), expected 3"
            error = float((trained.view(classes, width) - expected).abs().max())
            if not error < 1e-5:
                return f"weights differ from torch's by {error:.2e} on {threads} thread(s)"
        return None
