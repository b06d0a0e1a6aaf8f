"""Sample keys: readable, unique, tar- and WebDataset-safe names derived from source paths."""

from __future__ import annotations

import hashlib
import re

from camtrap_fast.shards.tar_writer import MAX_KEY_CHARS

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def make_keys(relpaths: list[str]) -> list[str]:
    """One key per path, in the same order. WebDataset splits names at the first dot, so keys have none."""
    keys, used = [], set()
    for relpath in relpaths:
        stem = relpath.rsplit(".", 1)[0] if "." in relpath.rsplit("/", 1)[-1] else relpath
        key = _UNSAFE.sub("_", stem).strip("_") or "sample"
        if len(key) > MAX_KEY_CHARS:
            digest = hashlib.sha1(relpath.encode()).hexdigest()[:16]
            key = f"{key[: MAX_KEY_CHARS - 17]}_{digest}"
        base, n = key, 1
        while key in used:  # e.g. a.jpg and a.png; suffix in input order, which is deterministic
            n += 1
            key = f"{base[: MAX_KEY_CHARS - 8]}_{n}"
        used.add(key)
        keys.append(key)
    return keys
