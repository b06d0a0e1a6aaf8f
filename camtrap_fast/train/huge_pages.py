"""Cached feature rows moved into transparent huge pages (Linux), for the phase-2 head's random-row gathers.

Each epoch of head training reads every feature row once in a fresh shuffle. With 4 KB pages nearly every row of
a 155,254 x 512 fp16 cache (159 MB, ~39,000 pages) is also a TLB miss and a page walk; in 2 MB pages the whole
cache needs ~80 TLB entries. On the 2-core dev VM the same training steps took 75-88 us a step on 4 KB pages and
55-62 on huge pages in the same runs, and on other runs nearly the same: the 4 KB figure depends on what else the
host is doing, the huge-page one much less. Moving them costs ~0.4 s per 159 MB (MADV_COLLAPSE copies them in
place: no second copy of the features is held), once per tensor: a tensor already in huge pages is left as it is.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys

import torch

log = logging.getLogger(__name__)

HUGE_PAGE = 2 << 20
# Below this a tensor spans too few huge pages for the TLB to matter.
MIN_BYTES = 32 << 20
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25


@functools.cache
def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
    return madvise


def move_to_huge_pages(tensor: torch.Tensor) -> bool:
    """Ask Linux to back the 2 MB-aligned inside of a CPU tensor's memory with huge pages, now (MADV_COLLAPSE,
    Linux 6.1+) and for the pages it faults in later (MADV_HUGEPAGE). Contents do not change. True when the move
    was done (a second call on the same tensor finds it done and costs little); False where it does not apply
    (small, not contiguous, not CPU, not Linux) or the kernel refused it (older kernel, THP off, no free huge
    pages): training then runs on the pages as they are."""
    madvise = _madvise()
    nbytes = tensor.numel() * tensor.element_size()
    if madvise is None or tensor.device.type != "cpu" or not tensor.is_contiguous() or nbytes < MIN_BYTES:
        return False
    address = tensor.data_ptr()
    start, end = -(-address // HUGE_PAGE) * HUGE_PAGE, (address + nbytes) // HUGE_PAGE * HUGE_PAGE
    if end <= start:
        return False
    if madvise(start, end - start, MADV_HUGEPAGE) != 0:
        log.debug("madvise(MADV_HUGEPAGE) refused (errno %d)", ctypes.get_errno())
        return False
    if madvise(start, end - start, MADV_COLLAPSE) != 0:
        log.debug("madvise(MADV_COLLAPSE) refused (errno %d)", ctypes.get_errno())
        return False
    return True
