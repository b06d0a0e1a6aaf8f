"""Random access to sample JPEGs by byte offset, straight from local shards.

One `os.pread` per sample: no tar parsing, no seek state, so one reader can be
shared by threads, and each process opens its own descriptors lazily (fork-safe).
"""

from __future__ import annotations

import os
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.shards.sample_index import SampleIndex


class ShardReader:
    """Reads sample i's encoded JPEG from its shard; errors name the shard and key."""

    def __init__(self, index: SampleIndex, root: str | os.PathLike):
        self.index = index
        self.root = Path(root)
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    def _fd(self, shard_id: int) -> int:
        if self._pid != os.getpid():  # forked: descriptors are shared with the parent's offsets; reopen
            self._fds, self._pid = {}, os.getpid()
        fd = self._fds.get(shard_id)
        if fd is None:
            path = self.root / self.index.shards[shard_id]
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as error:
                raise UserError(f"{path}: cannot open shard ({error.strerror})") from None
            self._fds[shard_id] = fd
        return fd

    def read(self, i: int) -> bytes:
        shard_id = int(self.index.shard_ids[i])
        size = int(self.index.sizes[i])
        data = os.pread(self._fd(shard_id), size, int(self.index.offsets[i]))
        if len(data) != size:
            raise UserError(
                f"{self.root / self.index.shards[shard_id]}: sample '{self.index.key(i)}' is cut off "
                f"({len(data)} of {size} bytes; the shard is truncated)"
            )
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __enter__(self) -> "ShardReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # picklable for DataLoader workers / DALI parallel external_source
        return {"index": self.index, "root": self.root}

    def __setstate__(self, state):
        self.__init__(state["index"], state["root"])
