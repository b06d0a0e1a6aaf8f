"""Deterministic WebDataset tar writing, with the byte offsets our index and DALI's index need.

Headers are plain USTAR with fixed mtime, owner and mode, and members of a sample
are written in sorted extension order, so identical input gives identical bytes.
Writing headers ourselves (rather than through `tarfile.TarFile.addfile`) is what
lets us record each payload's offset as we go.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass

BLOCK = 512
RECORD = 20 * BLOCK  # GNU tar and Python's tarfile pad archives to whole 10 KiB records
MTIME = 0  # fixed, for byte-identical shards
MAX_KEY_CHARS = 90  # USTAR names are at most 100 bytes; ".json" and friends must fit after the key


@dataclass(frozen=True)
class Member:
    extension: str
    offset: int  # of the payload, after the 512-byte header (what DALI's .idx records)
    size: int


class ShardTarWriter:
    """Append samples to an open binary file; `close()` writes the end-of-archive marker."""

    def __init__(self, fileobj: io.BufferedIOBase):
        self.fileobj = fileobj
        self.position = 0
        self.samples: list[tuple[str, list[Member]]] = []

    def write_sample(self, key: str, members: dict[str, bytes]) -> list[Member]:
        if "." in key or "/" in key or len(key) > MAX_KEY_CHARS:
            raise ValueError(f"invalid sample key {key!r}")
        written = []
        for extension in sorted(members):
            data = members[extension]
            info = tarfile.TarInfo(f"{key}.{extension}")
            info.size = len(data)
            info.mtime = MTIME
            info.mode = 0o444
            info.uname = info.gname = ""
            header = info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")
            self._write(header)
            written.append(Member(extension, self.position, len(data)))
            self._write(data)
            self._write(b"\0" * (-len(data) % BLOCK))
        self.samples.append((key, written))
        return written

    def close(self) -> None:
        end = self.position + 2 * BLOCK
        self._write(b"\0" * (2 * BLOCK + (-end % RECORD)))

    def _write(self, data: bytes) -> None:
        self.fileobj.write(data)
        self.position += len(data)

    def dali_index(self) -> str:
        """The shard's index in the format of DALI's `wds2idx` (v1.2), for `fn.readers.webdataset(index_paths=...)`."""
        lines = [f"v1.2 {len(self.samples)}"]
        for key, members in self.samples:
            lines.append(" ".join(f"{m.extension} {m.offset} {m.size} {key}.{m.extension}" for m in members))
        return "\n".join(lines) + "\n"
