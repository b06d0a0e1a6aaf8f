"""A part's progress log (`.shard-progress-K-of-N.jsonl`): what makes a killed `shard` resumable.

Each line is written after its shard is renamed into place (or, for a planned shard whose every image was
rejected, after those rejections are known) and names that planned shard (`chunk`), its samples and its
rejections, so a rerun with the same fingerprint continues after the last logged shard and redoes anything
later. The merge reads the same lines: they are the only record of a part's work.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

from camtrap_fast.atomic import write_text
from camtrap_fast.errors import os_fault
from camtrap_fast.shards.out_dir import remove_unlogged_shards


def log_shard(path: Path, entry: dict) -> None:
    """Append one finished shard's line (fsynced: the line is the promise that the shard is in place)."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        raise os_fault(error, path) from None


def parse_progress(path: Path) -> list[dict]:
    """The lines of a progress log up to the first torn one (killed mid-write), as written."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        return []  # damaged: everything is redone
    except OSError as error:
        raise os_fault(error, path, "read") from None
    done = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            break
        if not isinstance(entry, dict) or "chunk" not in entry:
            break  # torn, or a log from before planned shards existed: redone
        done.append(entry)
    return done


def read_progress(out: Path, path: Path, expected: list[int], owned: set[str]) -> list[dict]:
    """Logged shards of this part whose tar is in place, in the order of `expected` (its planned chunk numbers);
    whatever follows the first gap is redone, and its files removed, so nothing stale stays."""
    done = []
    for entry, chunk in zip(parse_progress(path), expected):
        if entry["chunk"] != chunk or (entry["shard"] is not None and not (out / entry["shard"]).exists()):
            break
        done.append(entry)
    remove_unlogged_shards(out, {entry["shard"] for entry in done}, owned)
    if path.exists() or done:
        write_text(path, "".join(json.dumps(entry) + "\n" for entry in done))
    return done


def logged_entries(out: Path, done: list[dict]) -> list[tuple]:
    """(shard, label, offset, size, key, crc32, sequence id, source relpath) of every logged sample. Logs from
    before the CRC-32 existed list 4 values a sample; their CRC-32 is read back from the shard, which is in place
    since it was logged."""
    entries = []
    for p in done:
        for key, label, offset, size, *rest in p["samples"]:
            if not rest:
                with open(out / p["shard"], "rb") as tar:
                    tar.seek(offset)
                    rest = [zlib.crc32(tar.read(size))]
            seq, source = rest[1:3] if len(rest) >= 3 else ("", "")
            entries.append((p["shard"], label, offset, size, key, rest[0], seq, source))
    return entries
