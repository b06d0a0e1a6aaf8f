"""A CSV with `filepath,label` and optional `split`, `location`, `seq_id`, `frame_num`, `datetime`."""

from __future__ import annotations

import csv
from pathlib import Path

from camtrap_fast.errors import UserError, os_fault
from camtrap_fast.ingest.records import Record
from camtrap_fast.ingest.remote import image_path, is_url

REQUIRED = ("filepath", "label")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def load_csv(csv_path: Path, image_root: Path | str | None) -> list[Record]:
    root = image_root or csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise UserError(
                    f"{csv_path}: missing column(s) {', '.join(missing)} (found: {', '.join(columns) or 'none'}; "
                    "need a header row with filepath,label)"
                )
            rows, end = [], reader.line_num
            for row in reader:
                start, end = end + 1, reader.line_num
                # DictReader files extra fields under None and fills missing ones with None; either means the
                # row does not line up with the header, and every value after the slip would be read wrongly.
                if None in row or None in row.values():
                    raise UserError(_misaligned(csv_path, reader.line_num, row, len(reader.fieldnames)))
                # No value here (path, label, split, ...) spans lines: one that does swallowed the rows after
                # an unclosed quote.
                spanning = next((k for k, v in row.items() if "\n" in v or "\r" in v), None)
                if spanning is not None:
                    raise UserError(f"{csv_path}:{start}: the {spanning.strip()} value runs over lines {start}-{end} "
                                    f"({row[spanning][:30]!r}...); is a quote not closed?")
                rows.append((end, {k.strip(): v.strip() for k, v in row.items()}))
    except UnicodeDecodeError:
        raise UserError(f"{csv_path}: not a UTF-8 text CSV") from None
    except csv.Error as error:
        raise UserError(f"{csv_path}: malformed CSV ({error})") from None
    except OSError as error:
        raise os_fault(error, csv_path, "read") from None

    records = []
    for line, row in rows:
        if not row["filepath"]:
            raise UserError(f"{csv_path}:{line}: empty filepath")
        split = row.get("split") or None
        if split is not None:
            if split.lower() not in SPLIT_NAMES:
                raise UserError(f"{csv_path}:{line}: split '{split}' is not one of train, val, test")
            split = SPLIT_NAMES[split.lower()]
        name = row["filepath"]
        frame = row.get("frame_num") or None
        records.append(
            Record(
                path=image_path(root, name),
                relpath=name if is_url(name) else Path(name).as_posix(),
                label=row["label"],
                location=row.get("location") or None,
                seq_id=row.get("seq_id") or None,
                frame_num=int(frame) if frame and frame.isdigit() else None,
                datetime=row.get("datetime") or None,
                split=split,
            )
        )
    return records


def _misaligned(csv_path: Path, line: int, row: dict, columns: int) -> str:
    extra = len(row.get(None, ()))
    found = columns + extra - sum(value is None for key, value in row.items() if key is not None)
    head = f"{csv_path}:{line}: {found} field{'s' if found != 1 else ''} where the header has {columns}"
    if extra:
        return f'{head} (quote a value that holds a comma, as in "Grey, Fox"; or is a line break missing?)'
    return f"{head} (write every column, empty ones as nothing between two commas)"
