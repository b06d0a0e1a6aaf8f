"""The two error types the CLI turns into one line and an exit code; anything else is a bug.

- `UserError` (exit 2): the user gave us something we cannot use: a bad option, a bad input file, a refused
  output folder. The message names the flag, file or key and says what to do.
- `Fault` (exit 1): something found wrong in the data or the system: a damaged shard, a full disk, a
  permission refused. The message names the path (and the errno in words).

Everything else keeps its traceback: that is a bug in camtrap-fast.
"""

from __future__ import annotations

import os


class CamtrapError(Exception):
    """Base of the errors that end a command with one line and `exit_code`."""

    exit_code = 1


class UserError(CamtrapError):
    """A problem with the user's input, described in one line that names the file, shard, key or flag."""

    exit_code = 2


class Fault(CamtrapError):
    """A fault in the data or the system (damaged shard, disk full, permission denied), named in one line."""

    exit_code = 1


def os_fault(error: OSError, path: str | os.PathLike | None = None, doing: str = "write") -> Fault:
    """`PATH: cannot DOING (the errno in words)` for an OSError met while working on `path`."""
    where = path if path is not None else (error.filename or "?")
    words = error.strerror or str(error) or type(error).__name__
    return Fault(f"{where}: cannot {doing} ({words})")


class ConfigError(ValueError):
    """An invalid field of a config dataclass, raised in its `__post_init__`.

    It names the field (`batch_size`), which is right for code; the command line turns it into a UserError
    that names the flag (`--batch-size`) instead (`train.options`).
    """

    def __init__(self, field: str, value, problem: str):
        super().__init__(f"{field} {value!r}: {problem}")
        self.field, self.value, self.problem = field, value, problem
