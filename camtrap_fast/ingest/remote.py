"""Remote images: URLs in a label source, or an `--image-root` that is an http(s):// prefix.

http(s) URLs are fetched at shard time (shards/fetch.py) unless `--remote-media skip`; other schemes
(s3://, gs://) are rejected, with the https:// form to use: public buckets serve the same objects over HTTPS.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from camtrap_fast.ingest import records as reasons
from camtrap_fast.ingest.records import Record, Rejection

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HTTP = re.compile(r"^https?://", re.IGNORECASE)
_HINTS = {"s3": "https://BUCKET.s3.amazonaws.com/KEY", "gs": "https://storage.googleapis.com/BUCKET/KEY"}


def is_url(text: str) -> bool:
    return _URL.match(text) is not None


def is_http(text: str) -> bool:
    return _HTTP.match(text) is not None


_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")


def posix_name(name: str) -> str:
    """`Path(name).as_posix()`, without building a Path for the usual plain relative name (millions of them)."""
    return name if _PLAIN.fullmatch(name) and "/./" not in f"/{name}/" else Path(name).as_posix()


def image_path(root: Path | str, name: str) -> str:
    """Where the image a source names as `name` lives: `name` itself when it is a URL (or an absolute path),
    else under `root`, a folder or an http(s):// prefix (the name URL-quoted)."""
    if is_url(name):
        return name
    if isinstance(root, str) and is_url(root):
        return root.rstrip("/") + "/" + urllib.parse.quote(posix_name(name).lstrip("/"), safe="/")
    return os.path.abspath(os.path.join(root, name))  # an absolute `name` stays itself


def image_locator(root: Path | str) -> Callable[[str], tuple[str, str]]:
    """`name -> (image_path(root, name), relpath)` for the millions of names of one source: a plain relative
    name (the usual case) is joined to the root resolved once, without quoting (it has nothing to quote) or
    normalising (it has no `.`, `..` or `//` segment); any other name takes the general path."""
    if isinstance(root, str) and is_url(root):
        prefix = root.rstrip("/") + "/"
    else:
        prefix = os.path.join(os.path.abspath(root), "")

    def locate(name: str) -> tuple[str, str]:
        if _PLAIN.fullmatch(name):
            return prefix + name, name
        return image_path(root, name), name if is_url(name) else posix_name(name)

    return locate


def reject_remote(records: list[Record], fetch: bool = False) -> tuple[list[Record], list[Rejection]]:
    """Records whose path is a URL that will not be fetched become `remote media (not downloaded)` rejections:
    every URL without `fetch`, and those of a scheme other than http(s) with it."""
    kept, rejected = [], []
    for record in records:
        if is_url(record.path) and not (fetch and is_http(record.path)):
            scheme = record.path.split(":", 1)[0].lower()
            detail = (f"{scheme}:// is not read; give its https:// form ({_HINTS[scheme]})" if fetch and scheme in _HINTS
                      else "not an http(s) URL" if fetch else "download it and pass --image-root, or drop "
                      "--remote-media skip")
            rejected.append(Rejection(record.path, reasons.REMOTE_MEDIA, detail))
        else:
            kept.append(record)
    return kept, rejected
