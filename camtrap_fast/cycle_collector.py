"""Python's cyclic garbage collector paused around hot loops that make many objects but no reference cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cycle_collector(enabled: bool, freeze: bool = False) -> Iterator[None]:
    """The cyclic garbage collector on or off for a block, as it was after; `freeze`: what the block left alive is
    never walked by it (gc.freeze). Objects are still freed by reference counting while it is off."""
    was = gc.isenabled()
    gc.enable() if enabled else gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        gc.enable() if was else gc.disable()
