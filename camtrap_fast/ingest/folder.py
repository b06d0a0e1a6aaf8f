"""A folder of class sub-folders: SOURCE/<class>/<image>."""

from __future__ import annotations

import os
from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.ingest.records import Record


def load_folder(root: Path) -> list[Record]:
    """Every regular, non-hidden file below a class folder is an input; non-images are rejected later, not skipped."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UserError(f"{root}: no class sub-folders found (expected {root}/<class name>/<image files>)")
    records = []
    for class_dir in class_dirs:
        for path in sorted(class_dir.rglob("*")):
            relative = path.relative_to(root)
            if (path.is_file() or path.is_symlink()) and not any(part.startswith(".") for part in relative.parts):
                records.append(Record(path=os.path.abspath(path), relpath=relative.as_posix(), label=class_dir.name))
    return records
