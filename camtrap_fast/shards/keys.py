"""Sample keys: readable, unique, tar- and WebDataset-safe names derived from source paths."""

from __future__ import annotations

import hashlib
import re

from camtrap_fast.shards.tar_writer import MAX_KEY_CHARS

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def make_keys(relpaths: list[str], suffixes: list[str] | None = None) -> list[str]:
    """One key per path, in the same order. WebDataset splits names at the first dot, so keys have none.

    A suffix (`_d0`: detection 0 of that image) is kept whole, even when a long path is shortened.
    """
    unsafe = _UNSAFE.sub

    def own_key(relpath: str, suffix: str) -> str:
        dot = relpath.rfind(".")
        stem = relpath[:dot] if dot > relpath.rfind("/") else relpath  # the extension of the file name, if any
        key = (unsafe("_", stem).strip("_") or "sample") + suffix
        if len(key) > MAX_KEY_CHARS:
            digest = hashlib.sha1(relpath.encode()).hexdigest()[:16]
            key = f"{key[: MAX_KEY_CHARS - 17 - len(suffix)]}_{digest}{suffix}"
        return key

    keys = [own_key(relpath, suffix) for relpath, suffix in zip(relpaths, suffixes or [""] * len(relpaths))]
    if len(set(keys)) == len(keys):  # the usual case: no two paths give one key, nothing to rename
        return keys
    unique, used = [], set()
    for key in keys:
        base, n = key, 1
        while key in used:  # e.g. a.jpg and a.png; suffix in input order, which is deterministic
            n += 1
            key = f"{base[: MAX_KEY_CHARS - 8]}_{n}"
        used.add(key)
        unique.append(key)
    return unique
