"""Package attributes imported on first use (PEP 562), so that building the command line, which reads the
configs' defaults, never pays for importing torch, PIL or DALI through a package's `__init__`."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_attributes(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package` that imports `exports[name]` (a module path) when `name` is used."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    return __getattr__
