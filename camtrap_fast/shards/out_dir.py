"""The shard output folder: what `camtrap-fast shard` writes there, and the only files it ever deletes.

The shard step knows every name it writes (below). `--overwrite` and the clean-up after a failed or
resumed run delete files with those names and nothing else: anything else inside OUT or its split
folders is the user's, and the run is refused, naming it, before a single file is deleted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from camtrap_fast.atomic import write_text
from camtrap_fast.errors import Fault, UserError, os_fault
from camtrap_fast.shards.manifest import MANIFEST_FILE, SPLITS
from camtrap_fast.shards.sample_index import INDEX_FILE

RUN_FILE = ".shard-run.json"
PROGRESS_FILE = ".shard-progress.jsonl"
REJECTED_FILE = "rejected.csv"
PLAN_FILE = ".shard-plan.json"  # what the parts agree on and the merge needs (parts.py)
TOP_FILES = (MANIFEST_FILE, REJECTED_FILE, RUN_FILE, PROGRESS_FILE, PLAN_FILE)
# One progress log and one completion record per part of a `--part K/N` run (a one-machine run is part 0/1).
PART_FILE = re.compile(r"\.shard-(progress|part)-\d+-of-\d+\.jsonl?")
SHARD_FILE = re.compile(r"shard-\d{6}\.(tar|idx)")
_SPLIT_FILE = re.compile(rf"{SHARD_FILE.pattern}|{re.escape(INDEX_FILE)}")
# atomic.temp_name's `.NAME.RANDOM.tmp`; and `shard-NNNNNN.tar.tmp`, which versions before atomic.py left behind.
_TEMP = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp|shard-\d{6}\.(tar|idx)\.tmp")


def is_top_file(name: str) -> bool:
    """Whether `name` is one of the files this tool writes at the top of OUT."""
    return name in TOP_FILES or bool(PART_FILE.fullmatch(name))


def is_temporary(name: str, top: bool) -> bool:
    """Whether `name` is a temporary this tool writes in OUT (`top`) or in a split folder."""
    match = _TEMP.fullmatch(name)
    if match is None:
        return False
    if match.group("name") is None:
        return not top
    return is_top_file(match.group("name")) if top else bool(_SPLIT_FILE.fullmatch(match.group("name")))


def prepare_out(out: Path, fingerprint: str, overwrite: bool, shared: bool = False) -> str:
    """Decide what OUT holds: 'new', 'reused', 'resume' or 'complete'; refuse another dataset unless `overwrite`.

    `shared`: other parts of the same run may be writing into OUT right now, so nothing but this part's own
    files may be deleted (parts.py); their temporaries are left for the merge to remove."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose a folder for the shards")
    entries = set(_names(out)) if out.exists() else set()
    # A kill can leave a temporary of ours behind; it is ours to remove (unless another part may be writing it).
    for name in [e for e in entries if is_temporary(e, top=True)]:
        if not shared:
            _unlink(out / name)
        entries.discard(name)
    foreign = sorted(e for e in entries - set(SPLITS) if not is_top_file(e))
    if foreign:
        raise UserError(f"{out}: holds files camtrap-fast did not write ({', '.join(foreign[:3])}); "
                        "choose an empty or new folder")
    previous = _previous_fingerprint(out, entries)
    if previous == fingerprint:
        if MANIFEST_FILE in entries:
            if not shared:
                remove_run_files(out)
            return "complete"
        if not shared:
            clean_temporaries(out)
        return "resume"
    if entries:
        if not overwrite:
            if previous is None and MANIFEST_FILE in entries:  # damage found in the data: a fault, not a mistake
                raise Fault(f"{out / MANIFEST_FILE}: damaged (no fingerprint can be read from it); pass --overwrite "
                            "to shard into this folder again, or choose another folder")
            what = "another dataset or other options" if previous else "an unfinished run of unknown origin"
            raise UserError(f"{out}: holds {what}; pass --overwrite to replace it, or choose another folder")
        clean(out, remove_dir=False)
    new = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise os_fault(error, out, "create the output folder") from None
    write_text(out / RUN_FILE, json.dumps({"fingerprint": fingerprint}) + "\n")  # parts write the same bytes
    return "new" if new else "reused"


def remove_run_files(out: Path) -> None:
    """The run's bookkeeping (progress logs, part records, the plan), once the manifest is in place."""
    for name in _names(out):
        if name in (PROGRESS_FILE, RUN_FILE, PLAN_FILE) or PART_FILE.fullmatch(name) or is_temporary(name, top=True):
            _unlink(out / name)


def our_files(out: Path) -> list[Path]:
    """Every file of ours in OUT, split folders included; a UserError naming the first file that is not ours."""
    if not out.is_dir():
        return []
    files, foreign = [], []
    for name in sorted(_names(out)):
        path = out / name
        if is_top_file(name) or is_temporary(name, top=True):
            files.append(path)
        elif name in SPLITS and path.is_dir() and not path.is_symlink():
            for inner in sorted(_names(path)):
                ours = (_SPLIT_FILE.fullmatch(inner) or is_temporary(inner, top=False)) and not (path / inner).is_dir()
                (files if ours else foreign).append(path / inner)
        else:
            foreign.append(path)
    if foreign:
        others = [str(p) for p in foreign[1:4]] + (["..."] if len(foreign) > 4 else [])
        more = f" (nor {', '.join(others)})" if others else ""
        raise UserError(f"{foreign[0]}: not written by camtrap-fast{more}; move it out of {out} "
                        "(nothing was deleted) or choose another output folder")
    return files


def clean(out: Path, remove_dir: bool) -> None:
    """Delete our files in OUT (refused, deleting nothing, when OUT holds anything else), then the empty folders."""
    # The manifest goes first: if a later deletion fails (an immutable file), what is left is not "complete".
    for path in sorted(our_files(out), key=lambda p: p.name != MANIFEST_FILE):
        _unlink(path)
    for folder in [out / split for split in SPLITS] + ([out] if remove_dir else []):
        if folder.is_dir() and not folder.is_symlink():
            try:
                folder.rmdir()
            except OSError as error:
                raise os_fault(error, folder, "remove folder") from None


def clean_temporaries(out: Path, owned: set[str] | None = None) -> None:
    """Remove our temporaries in the split folders; with `owned` (a part's shard names, "train/shard-000003.tar"),
    only those of its own shards."""
    for split in SPLITS:
        if (out / split).is_dir():
            for name in _names(out / split):
                match = _TEMP.fullmatch(name)
                if is_temporary(name, top=False) and (owned is None or _shard_of(split, match) in owned):
                    _unlink(out / split / name)


def _shard_of(split: str, match: re.Match) -> str:
    name = match.group("name") or match.group(0)[: -len(".tmp")]
    return f"{split}/{name.rsplit('.', 1)[0]}.tar"


def remove_unlogged_shards(out: Path, logged: set[str], owned: set[str] | None = None) -> None:
    """Shards a resumed run will write again (after the last logged one): removed, so nothing stale stays.
    With `owned`, only among those shards (other parts' shards are theirs)."""
    for split in SPLITS:
        if not (out / split).is_dir():
            continue
        for name in sorted(_names(out / split)):
            shard = f"{split}/{name[:-4]}.tar"
            if SHARD_FILE.fullmatch(name) and shard not in logged and (owned is None or shard in owned):
                _unlink(out / split / name)  # a tar, or an .idx whose tar never made it into place


def _previous_fingerprint(out: Path, entries: set[str]) -> str | None:
    for name in (MANIFEST_FILE, RUN_FILE):
        if name in entries:
            try:
                return json.loads((out / name).read_text(encoding="utf-8")).get("fingerprint")
            except (OSError, ValueError, AttributeError):
                return None
    return None


def _names(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError as error:
        raise os_fault(error, folder, "list") from None


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise os_fault(error, path, "remove") from None
