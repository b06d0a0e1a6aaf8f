"""The compiled phase-2 step loop (headloop.c), loaded with ctypes; None when it is not built or not usable.

`make setup` builds `_headloop.so` beside this file (Makefile: headloop) for the machine it runs on. The library
calls the BLAS `sgemm_` that torch's CPU build exports (MKL on x86-64 wheels), so its matmuls are torch's, on
torch's threads. Before first use it trains a few steps and checks them against the torch loop's arithmetic
(a wrong BLAS integer width or an ABI mismatch fails that check): any failure logs why and leaves the caller on
its torch loop, which computes the same thing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

LIBRARY = Path(__file__).with_name("_headloop.so")
ABI = 4
# headloop_isa()'s bits, as /proc/cpuinfo names them (see headloop.c).
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "bmi2", "f16c")
LOSS_SOFTMAX, LOSS_FOCAL, LOSS_SIGMOID_FOCAL = 0, 1, 2

_P, _I, _F, _L = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_int64
_ARGTYPES = [_P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _F, _F, _P, _F, _F, _F, _F, _L]


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


def _sgemm_address() -> int | None:
    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return ctypes.cast(ctypes.CDLL(str(library)).sgemm_, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


@functools.cache
def load() -> HeadLoop | None:
    if not LIBRARY.is_file():
        log.info("phase-2 head: %s is not built (make setup builds it); using the torch loop", LIBRARY.name)
        return None
    sgemm = _sgemm_address()
    if sgemm is None:
        log.info("phase-2 head: this torch build exports no sgemm_; using the torch loop")
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
    steps, matmuls, gather = library.headloop_steps, library.headloop_matmuls, library.headloop_gather
    steps.restype, steps.argtypes = _L, _ARGTYPES
    matmuls.restype, matmuls.argtypes = _L, [_P, _P, _P, _P, _P, _P, _I, _I, _I, _I]
    gather.restype, gather.argtypes = _I, [_P, _I, _L, _L, _P, _I, _P, _I]
    loop = HeadLoop(steps, matmuls, gather, sgemm)
    problem = loop.self_check()
    if problem:
        log.warning("phase-2 head: %s failed its self-check (%s); using the torch loop", LIBRARY.name, problem)
        return None
    return loop


def _address(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


class HeadLoop:
    """One call trains a chunk's batches: see headloop.c for the arithmetic, _FusedHead for the buffers."""

    def __init__(self, steps, matmuls, gather, sgemm: int):
        self._steps, self._matmuls, self._gather, self._sgemm = steps, matmuls, gather, sgemm

    def gather(self, features: torch.Tensor, indices: torch.Tensor, out: torch.Tensor) -> bool:
        """out[i, :D] = features[indices[i]] as fp32 (fp16 or fp32 features, C-contiguous, on the CPU); False:
        the caller gathers instead. An index outside the rows raises IndexError, as index_select would."""
        if features.dtype not in (torch.float16, torch.float32) or not features.is_contiguous() \
                or indices.dtype != torch.int64 or not indices.is_contiguous():
            return False
        status = self._gather(features.data_ptr(), features.element_size(), features.shape[0], features.shape[1],
                              indices.data_ptr(), len(indices), out.data_ptr(), out.shape[1])
        if status == -2:
            raise IndexError(f"an epoch order holds a row index outside 0..{features.shape[0] - 1}")
        return status == 0

    def run(self, inputs: torch.Tensor, targets: torch.Tensor, row_scale: torch.Tensor | None, logits: torch.Tensor,
            dlogits: torch.Tensor, theta: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor,
            exp_avg_sq: torch.Tensor, n: int, batch_size: int, loss: int, gamma: float, min_margin: float,
            class_weights: torch.Tensor | None, lr: float, betas: tuple[float, float], eps: float,
            steps_done: int) -> int:
        """Train on inputs[:n] (fp32, C-contiguous rows of width theta's row) in batches; returns the steps taken."""
        classes = logits.shape[1]
        return self._steps(self._sgemm, inputs.data_ptr(), targets.data_ptr(), _address(row_scale),
                           logits.data_ptr(), dlogits.data_ptr(), theta.data_ptr(), grad.data_ptr(),
                           exp_avg.data_ptr(), exp_avg_sq.data_ptr(), n, batch_size, inputs.shape[1], classes, loss,
                           gamma, min_margin, _address(class_weights), lr, betas[0], betas[1], eps, steps_done)

    def matmuls_only(self, inputs: torch.Tensor, logits: torch.Tensor, dlogits: torch.Tensor, theta: torch.Tensor,
                     grad: torch.Tensor, n: int, batch_size: int) -> int:
        """Only the two matmuls of run()'s steps over the same batches (the benchmark's limit)."""
        return self._matmuls(self._sgemm, inputs.data_ptr(), logits.data_ptr(), dlogits.data_ptr(), theta.data_ptr(),
                             grad.data_ptr(), n, batch_size, inputs.shape[1], logits.shape[1])

    def self_check(self) -> str | None:
        """Three steps on a small problem against the same steps in torch; a message when they differ."""
        generator = torch.Generator().manual_seed(0)
        n, width, classes, batch = 20, 8, 3, 8
        inputs = torch.randn(n, width, generator=generator)
        targets = torch.randint(0, classes, (n,), generator=generator)
        theta = torch.randn(classes * width, generator=generator) * 0.1
        state = [torch.zeros_like(theta) for _ in range(3)]
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
        taken = self.run(inputs, targets, None, logits, dlogits, theta, *state, n, batch, LOSS_SOFTMAX, 0.0, 1e-6,
                         None, 0.01, (0.9, 0.999), 1e-6, 0)
        if taken != 3:
            return f"took {taken} steps, expected 3"
        error = float((theta.view(classes, width) - expected).abs().max())
        return None if error < 1e-5 else f"weights differ from torch's by {error:.2e}"
