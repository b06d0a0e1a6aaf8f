"""Worker processes that end with their parent.

A worker left behind by a killed `train` or `shard` holds memory and open shards for seconds (PyTorch's
DataLoader workers notice a dead parent only at their next status check, every 5 s) or for good (a
multiprocessing pool worker blocked on its queue). On Linux the kernel can send the worker a signal the
moment its parent dies (prctl PR_SET_PDEATHSIG); elsewhere this is a no-op and the usual checks remain.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(*_args) -> None:
    """Call first thing in a worker process (a DataLoader worker_init_fn or a Pool initializer)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl: keep the library's own liveness checks
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
