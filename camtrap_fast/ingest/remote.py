"""Camtrap DP media may be URLs (Agouti exports keep most media online): those are not downloaded here."""

from __future__ import annotations

import re

from camtrap_fast.ingest import records as reasons
from camtrap_fast.ingest.records import Record, Rejection

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: str) -> bool:
    return bool(_URL.match(text))


def reject_remote(records: list[Record]) -> tuple[list[Record], list[Rejection]]:
    """Records whose path is still a URL become `remote media (not downloaded)` rejections."""
    kept, rejected = [], []
    for record in records:
        if is_url(record.path):
            rejected.append(Rejection(record.path, reasons.REMOTE_MEDIA, "download it and pass --image-root"))
        else:
            kept.append(record)
    return kept, rejected
