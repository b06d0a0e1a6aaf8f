"""Which classes get an output: only those with at least one image in a train shard.

A class whose every image is rejected must not become an output the model never sees trained.
The class list (and so every `.cls` index in the tars) is fixed before the train split is
written, so what can empty a class is found out first, as cheaply as it can be:

* missing files, by one `os.stat` per input (which the run's fingerprint makes anyway);
* undecodable files of rare classes (at most `RARE_IMAGES` images), by encoding those few images
  once up front. A class that loses all its images this way is dropped, said in the summary and
  the manifest, and its images stay listed in rejected.csv with their reasons;
* a class the source puts only in val or test (a CSV `split` column): dropped the same way.

What is left (a class of more than `RARE_IMAGES` images that all fail to decode) is found when the
train split is written and refused, naming the class, rather than shipped as a dead output.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

from camtrap_fast.errors import UserError
from camtrap_fast.ingest import records as reasons
from camtrap_fast.ingest.records import Record, Rejection
from camtrap_fast.ingest.remote import is_url

RARE_IMAGES = 4  # classes this small are decode-checked before the class list is fixed (a few images each)
MISSING = "missing"


def file_identities(records: list[Record]) -> dict[str, str]:
    """{path: "size:mtime_ns"}, MISSING for a file that does not exist, or the errno for one that cannot be stat'ed."""
    identities = {}
    for record in records:
        if is_url(record.path):  # fetched at shard time; a remote file's identity is its URL (README: remote)
            identities[record.path] = "remote"
            continue
        try:
            stat = os.stat(record.path)
            identities[record.path] = f"{stat.st_size}:{stat.st_mtime_ns}"
        except (FileNotFoundError, NotADirectoryError):
            identities[record.path] = MISSING
        except OSError as error:  # e.g. permission refused: the encoder reports it as unreadable
            identities[record.path] = f"error:{error.errno}"
    return identities


def drop_missing(records: list[Record], identities: dict[str, str]) -> tuple[list[Record], list[Rejection]]:
    """Records whose file exists, and a rejection for each that does not (before splitting, so a class's
    images that do exist are the ones split)."""
    if MISSING not in identities.values():  # the usual case, found in one C-level scan
        return list(records), []
    present = [r for r in records if identities.get(r.path) != MISSING]
    missing = [Rejection(r.path, reasons.MISSING_FILE, "no such file")
               for r in records if identities.get(r.path) == MISSING]
    return present, missing


def rare_paths(records: list[Record]) -> list[str]:
    """Paths of the images of classes with at most RARE_IMAGES images, in input order."""
    rare = {label for label, n in Counter(r.label for r in records).items() if n <= RARE_IMAGES}
    return [r.path for r in records if r.label in rare] if rare else []


def keep_trainable(records: list[Record]) -> tuple[list[Record], list[Rejection]]:
    """After splitting: records of classes with a train image; the others' records as NO_TRAINING_IMAGE."""
    trained = {r.label for r in records if r.split == "train"}
    kept = [r for r in records if r.label in trained]
    rejected = [Rejection(r.path, reasons.NO_TRAINING_IMAGE,
                          f"class '{r.label}' has no image in train, only in {r.split}")
                for r in records if r.label not in trained]
    return kept, rejected


def dropped_classes(listed: list[Record], classes: tuple[str, ...], rejections: list[Rejection]) -> dict[str, str]:
    """{class: why it has no output} for every class that passed the filters but has none."""
    label_of = {r.path: r.label for r in listed}
    why: dict[str, Counter] = defaultdict(Counter)
    for rejection in rejections:
        label = label_of.get(rejection.path)
        if label is not None and label not in classes:
            why[label][rejection.reason] += 1
    total = Counter(r.label for r in listed)
    return {label: f"no image of it reached a train shard ({total[label]} listed: "
                   + ", ".join(f"{n} {'only in val/test' if reason == reasons.NO_TRAINING_IMAGE else reason}"
                               for reason, n in counts.most_common()) + ")"
            for label, counts in sorted(why.items())}


def refuse_untrained(classes: tuple[str, ...], train_counts: dict[str, int], train_images: dict[str, int],
                     train_rejected: dict[str, list[Rejection]], out) -> None:
    """A UserError naming the first class whose train images were all rejected while the train split was written
    (`train_images`: its planned train images; `train_rejected`: the train split's rejections by class)."""
    empty = [c for c in classes if not train_counts.get(c)]
    if not empty:
        return
    name = empty[0]
    mine = train_rejected.get(name, [])
    detail = ", ".join(f"{n} {reason}" for reason, n in Counter(r.reason for r in mine).most_common())
    example = f"; e.g. {mine[0].path}: {mine[0].detail}" if mine else ""
    others = f" ({len(empty) - 1} more classes alike)" if len(empty) > 1 else ""
    raise UserError(f"class '{name}' has no training image left{others}: all {train_images.get(name, 0)} of its "
                    f"train images were rejected ({detail}{example}); fix those files or pass --drop-classes "
                    f"'{name}', and shard again with --overwrite ({out} holds this unfinished run)")
