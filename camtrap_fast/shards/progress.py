"""The shard run's progress log (`.shard-progress.jsonl`): what makes a killed `shard` resumable.

Each line is written after its shard is renamed into place and names what that shard consumed, so a
rerun with the same fingerprint continues after the last logged shard and redoes anything later.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

from camtrap_fast.atomic import write_text
from camtrap_fast.errors import os_fault
from camtrap_fast.shards.out_dir import PROGRESS_FILE, remove_unlogged_shards


def log_shard(out: Path, entry: dict) -> None:
    """Append one finished shard's line (fsynced: the line is the promise that the shard is in place)."""
    try:
        with open(out / PROGRESS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        raise os_fault(error, out / PROGRESS_FILE) from None


def read_progress(out: Path) -> list[dict]:
    """Logged shards whose tar is in place; a torn last line (killed mid-write) is ignored and redone."""
    path = out / PROGRESS_FILE
    if not path.exists():
        return []
    done = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            break
        if not (out / entry["shard"]).exists():
            break
        done.append(entry)
    remove_unlogged_shards(out, {entry["shard"] for entry in done})  # redone: nothing stale stays
    write_text(path, "".join(json.dumps(entry) + "\n" for entry in done))
    return done


def logged_entries(out: Path, done: list[dict]) -> list[tuple]:
    """(shard, label, offset, size, key, crc32) of every logged sample. Logs from before the CRC-32 existed
    list 4 values a sample; their CRC-32 is read back from the shard, which is in place since it was logged."""
    entries = []
    for p in done:
        for key, label, offset, size, *crc in p["samples"]:
            if not crc:
                with open(out / p["shard"], "rb") as tar:
                    tar.seek(offset)
                    crc = [zlib.crc32(tar.read(size))]
            entries.append((p["shard"], label, offset, size, key, crc[0]))
    return entries
