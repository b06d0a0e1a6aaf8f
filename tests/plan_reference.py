"""The per-record planning code of main before the dry run was vectorised (commit 789e5af), kept verbatim
as the reference tests/test_plan_equivalence.py compares the fast code against: same splits, keys, records,
fingerprint, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from camtrap_fast.errors import UserError
from camtrap_fast.ingest.coco import _id, _text, _unknown_image_ids, read_coco_json
from camtrap_fast.ingest.records import DETECTION, Record, Rejection
from camtrap_fast.ingest.remote import is_url, posix_name
from camtrap_fast.ingest.splits import (SPLITS, SplitConfig, _cover_every_split, _few_groups, missing_splits,
                                        wanted_splits)
from camtrap_fast.shards.keys import _UNSAFE
from camtrap_fast.shards.plan import Chunk
from camtrap_fast.shards.tar_writer import MAX_KEY_CHARS



def extend_fixed_splits(records: list[Record], group_key, group_by: str) -> list[Record]:
    """A split the source fixes for some frames of a group holds for the whole group; two different ones refuse."""
    if group_by == "none":
        return records
    fixed: dict[str, dict[str, str]] = defaultdict(dict)  # group -> {split: an example path}
    for r in records:
        if r.split is not None:
            fixed[group_key(r)].setdefault(r.split, r.relpath)
    for key, examples in sorted(fixed.items()):
        if len(examples) > 1:
            where = ", ".join(f"{path} in {split}" for split, path in sorted(examples.items()))
            raise UserError(f"{group_by} '{key[2:]}' straddles splits in the source's split column ({where}); "
                            f"give every frame of a {group_by} the same split, or pass --group-by none")
    return [replace(r, split=next(iter(fixed[group_key(r)]))) if r.split is None and group_key(r) in fixed else r
            for r in records]


def assign_splits(records: list[Record], config: SplitConfig) -> tuple[list[Record], dict[str, list[str]]]:
    """Give every record without a fixed split one; return them and the classes missing from a wanted split."""
    group_by = config.group_by
    if group_by == "auto":
        group_by = "sequence" if any(r.seq_id for r in records) else "none"

    def group_key(r: Record) -> str:
        value = {"sequence": r.seq_id, "location": r.location}.get(group_by)
        return f"g:{value}" if value else f"p:{r.path}"

    source_fixed = any(r.split is not None for r in records)
    records = extend_fixed_splits(records, group_key, group_by)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if record.split is None:
            groups[group_key(record)].append(i)

    # A group is stratified under its most common class.
    by_class: dict[str, list[str]] = defaultdict(list)
    for key in sorted(groups):
        members = groups[key]
        first = records[members[0]].label
        if all(records[i].label == first for i in members):  # nearly every group: no vote to count
            by_class[first].append(key)
            continue
        votes = Counter(records[i].label for i in members)
        by_class[min(votes, key=lambda c: (-votes[c], c))].append(key)

    rng = np.random.default_rng(config.seed)
    bounds = np.cumsum(config.fractions)
    assigned = {}
    for class_name in sorted(by_class):
        keys = by_class[class_name]
        keys = [keys[i] for i in rng.permutation(len(keys))]
        sizes = np.array([len(groups[k]) for k in keys], dtype=np.float64)
        # Systematic sampling: each group sits at the midpoint of its share of the class's images, shifted by
        # one random phase per class. Every split gets its fraction in expectation, even for classes of a
        # few images, where a greedy "biggest deficit first" rule would hand everything to train.
        midpoints = (np.cumsum(sizes) - sizes / 2) / sizes.sum()
        positions = (midpoints + rng.random()) % 1.0
        splits = np.minimum(np.searchsorted(bounds, positions, side="right"), 2)
        _cover_every_split(splits, sizes, [i for i, f in enumerate(config.fractions) if f > 0])
        _few_groups(splits, sizes, config.fractions)
        for key, split in zip(keys, splits):
            for i in groups[key]:
                assigned[i] = SPLITS[int(split)]

    out = [r if r.split is not None else r.with_split(assigned[i]) for i, r in enumerate(records)]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in out:
        counts[r.split][r.label] += 1
    return out, missing_splits(counts, wanted_splits(out, config, source_fixed))


def make_keys(relpaths: list[str], suffixes: list[str] | None = None) -> list[str]:
    """One key per path, in the same order. WebDataset splits names at the first dot, so keys have none.

    A suffix (`_d0`: detection 0 of that image) is kept whole, even when a long path is shortened.
    """
    keys, used = [], set()
    for relpath, suffix in zip(relpaths, suffixes or [""] * len(relpaths)):
        stem = relpath.rsplit(".", 1)[0] if "." in relpath.rsplit("/", 1)[-1] else relpath
        key = (_UNSAFE.sub("_", stem).strip("_") or "sample") + suffix
        if len(key) > MAX_KEY_CHARS:
            digest = hashlib.sha1(relpath.encode()).hexdigest()[:16]
            key = f"{key[: MAX_KEY_CHARS - 17 - len(suffix)]}_{digest}{suffix}"
        base, n = key, 1
        while key in used:  # e.g. a.jpg and a.png; suffix in input order, which is deterministic
            n += 1
            key = f"{base[: MAX_KEY_CHARS - 8]}_{n}"
        used.add(key)
        keys.append(key)
    return keys


def sample_keys(records: list[Record]) -> dict[str, list[str]]:
    """Keys per image: its own for a whole frame; `KEY_d3` for its detection 3, `KEY_a0` for annotation box 0.

    Suffixes name the box's place in its source (not among the boxes kept), so a detection keeps its key
    whatever the confidence threshold, and predictions join back to the detections file by it.
    """
    names = []
    for record in records:
        names += [(record.relpath, f"_{'d' if b.origin == DETECTION else 'a'}{b.index}") for b in record.boxes] \
            or [(record.relpath, "")]
    keys = iter(make_keys([n for n, _ in names], [suffix for _, suffix in names]))
    return {r.path: [next(keys) for _ in (r.boxes or (None,))] for r in records}


def fingerprint(options, format_used: str, records: list[Record], identities: dict[str, str]) -> str:
    """Everything that changes the bytes written: options, and every input's identity, size and mtime."""
    digest = hashlib.sha256()
    settings = {
        "format": format_used,
        "encode": [options.encode.size, options.encode.quality],
        "filters": [sorted(c.lower() for c in options.filters.drop_classes), options.filters.drop_multi_species,
                    sorted(options.filters.keep_fraction), options.filters.seed],
        "split": [list(options.split.fractions), options.split.group_by, options.split.seed],
        "shard_size": options.shard_size,
        "seed": options.seed,
        **({"remote_media": "skip"} if options.remote_media == "skip" else {}),  # absent: fingerprints made before it
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    encoder = json.JSONEncoder().encode
    for record in records:
        digest.update(encoder([record.path, record.labels, record.split, record.location, record.seq_id,
                               record.frame_num, record.datetime, identities[record.path]]).encode())
    return digest.hexdigest()[:32]


def image_path(root: Path | str, name: str) -> str:
    """Where the image a source names as `name` lives: `name` itself when it is a URL (or an absolute path),
    else under `root`, a folder or an http(s):// prefix (the name URL-quoted)."""
    if is_url(name):
        return name
    if isinstance(root, str) and is_url(root):
        return root.rstrip("/") + "/" + urllib.parse.quote(posix_name(name).lstrip("/"), safe="/")
    return os.path.abspath(os.path.join(root, name))  # an absolute `name` stays itself


def load_coco_checked(json_path: Path, image_root: Path | str | None) -> tuple[list[Record], list[Rejection]]:
    """Records, and a rejection for every annotation whose image_id is not in `images` (its label would be lost)."""
    data = read_coco_json(json_path)
    root = image_root or json_path.parent
    categories = {}
    for category in data["categories"]:
        try:
            categories[_id(category["id"])] = str(category["name"])
        except (KeyError, TypeError):
            raise UserError(f"{json_path}: a category lacks 'id' (a string or whole number) or 'name': "
                            f"{str(category)[:80]}") from None
    category_rank = {name: rank for rank, name in enumerate(categories.values())}

    per_image: dict = {}
    for annotation in data["annotations"]:
        try:
            image_id, category_id = _id(annotation["image_id"]), _id(annotation["category_id"])
        except (KeyError, TypeError):
            raise UserError(f"{json_path}: annotation {str(annotation)[:80]} lacks 'image_id' or 'category_id' "
                            "(each a string or whole number)") from None
        if category_id not in categories:
            raise UserError(f"{json_path}: annotation {annotation.get('id', '?')} names unknown category_id {category_id}")
        per_image.setdefault(image_id, []).append(categories[category_id])

    records, listed = [], set()
    images = data.pop("images")
    for i, image in enumerate(images):
        images[i] = None  # each image's dict goes as its record comes: the source is never held twice
        try:
            image_id, file_name = _id(image["id"]), str(image["file_name"])
        except (KeyError, TypeError):
            raise UserError(f"{json_path}: an image entry lacks 'id' (a string or whole number) or 'file_name': "
                            f"{str(image)[:80]}") from None
        listed.add(image_id)
        names = per_image.get(image_id, ())
        if len(names) == 1:  # the common case, spelled out: millions of images
            labels = (names[0],)
        else:
            # Several boxes of one species are one species; the primary label is the most annotated class
            # (ties: the earlier category), which only matters when multi-species images are kept.
            votes = Counter(names)
            labels = tuple(sorted(votes, key=lambda n: (-votes[n], category_rank[n])))
        frame = image.get("frame_num")
        records.append(
            Record(
                path=image_path(root, file_name),
                relpath=file_name if is_url(file_name) else posix_name(file_name),
                label=labels[0] if labels else "",
                labels=labels or ("",),
                location=_text(image.get("location")),
                seq_id=_text(image.get("seq_id")),
                frame_num=int(frame) if isinstance(frame, (int, float)) else None,
                datetime=_text(image.get("datetime")),
            )
        )
    return records, _unknown_image_ids(json_path, data, per_image, listed)


def cut_chunks(members: dict[str, list[Record]], keys: dict[str, list[str]], shard_size: int) -> list:
    """Shard boundaries from the planned sample counts (1 a frame, 1 a box), never from decode results."""
    chunks: list[Chunk] = []
    for split in SPLITS:
        images, start, count = members[split], 0, 0
        bounds = []
        for i, record in enumerate(images):
            count += len(keys[record.path])
            if count >= shard_size:
                bounds.append((start, i + 1))
                start, count = i + 1, 0
        if start < len(images):
            bounds.append((start, len(images)))
        chunks += [Chunk(len(chunks) + n, split, f"{split}/shard-{n:06d}.tar", a, b) for n, (a, b) in enumerate(bounds)]
    return chunks
