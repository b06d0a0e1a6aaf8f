"""Atomic output files: every file camtrap-fast writes goes through here.

A file is written under a hidden temporary name in its own folder and renamed over the target only when
complete, so a reader (or a rerun after a kill) never sees half a file, and the temporary is removed on
every error path. Temporaries are created with mode 0666 minus the umask, like any new file (a
`tempfile.mkstemp` temporary would be 0600). Write errors (disk full, read-only folder, permission
refused) become a one-line `Fault` naming the target and the errno in words.

Targets the user names (`predict --out`) may be more than a regular file: a symlink is written through
(its target is replaced, the link stays), a FIFO, character device or `-` (standard output) is written
directly, since there is nothing to rename over, and a directory is refused.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from camtrap_fast.errors import UserError, os_fault

TEMP_SUFFIX = ".tmp"
STDOUT = "-"


def temp_name(path: Path) -> Path:
    """A fresh hidden temporary beside `path`: `.NAME.RANDOM.tmp`."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _target(path: str | os.PathLike) -> tuple[Path | None, bool]:
    """(where to write, whether to write it directly rather than through a temporary); None means stdout."""
    if str(path) == STDOUT:
        return None, True
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path, False
    except OSError as error:
        raise os_fault(error, path, "use") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{path}: is a folder; name a file to write")
    return path, not stat.S_ISREG(mode)  # FIFO, character or block device: write in place


def check_target(path: str | os.PathLike) -> None:
    """Raise the UserError a write to `path` would raise (a folder), before the work that produces the data."""
    _target(path)


class AtomicFile:
    """A file being written: `.file` is the open temporary; `commit()` renames it into place, `discard()` drops it.

    Use as a context manager (commit on success, discard on error) or drive it by hand when the writing
    spans several calls (a shard that fills sample by sample).
    """

    def __init__(self, path: str | os.PathLike, mode: str = "wb", newline: str | None = None):
        if mode not in ("wb", "w"):
            raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
        self.path, self._direct = _target(path)
        self._shown = Path(path) if self.path is None else self.path
        self.temp: Path | None = None
        try:
            if self.path is None:  # stdout
                raw = sys.stdout.buffer
                self.file: IO = io.TextIOWrapper(raw, encoding="utf-8", newline=newline, write_through=True) \
                    if mode == "w" else raw
            elif self._direct:
                self.file = open(self.path, mode, newline=newline, **({"encoding": "utf-8"} if mode == "w" else {}))
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.temp = temp_name(self.path)
                fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                self.file = os.fdopen(fd, mode, newline=newline, **({"encoding": "utf-8"} if mode == "w" else {}))
        except OSError as error:
            self._remove_temp()
            raise os_fault(error, self._shown) from None

    def write(self, data) -> None:
        try:
            self.file.write(data)
        except OSError as error:
            self.discard()
            raise os_fault(error, self._shown) from None

    def commit(self) -> Path:
        try:
            if self.path is None:
                self.file.flush()
                if isinstance(self.file, io.TextIOWrapper):
                    self.file.detach()  # leave sys.stdout's buffer open
            else:
                self.file.close()
                if self.temp is not None:
                    os.replace(self.temp, self.path)
                    self.temp = None
        except OSError as error:
            self.discard()
            raise os_fault(error, self._shown) from None
        return self._shown

    def discard(self) -> None:
        if self.path is not None:
            try:
                self.file.close()
            except OSError:
                pass  # the write error being reported already says what went wrong
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self.temp is not None:
            try:
                os.unlink(self.temp)
            except FileNotFoundError:
                pass
            self.temp = None

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


@contextmanager
def open_atomic(path: str | os.PathLike, mode: str = "wb", newline: str | None = None) -> Iterator[IO]:
    """`with open_atomic(path, "w", newline="") as f:` — f is the temporary file; renamed into place on success."""
    atomic = AtomicFile(path, mode, newline)
    try:
        yield atomic.file
    except OSError as error:
        atomic.discard()
        if error.filename is None:  # a write to the open temporary failed: name the target, not the temporary
            raise os_fault(error, atomic._shown) from None
        raise  # an error on another file, which names itself
    except BaseException:
        atomic.discard()
        raise
    atomic.commit()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with AtomicFile(path, "wb") as atomic:
        atomic.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def save_torch(path: str | os.PathLike, obj) -> Path:
    """torch.save, atomically. Serialized in memory first: torch's own file writer reports a full disk as an
    opaque RuntimeError, and a model or checkpoint is small next to the memory training already uses."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_bytes(path, buffer.getbuffer())
