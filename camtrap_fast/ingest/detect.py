"""Pick the source format from what SOURCE is, unless the user forces one."""

from __future__ import annotations

from pathlib import Path

from camtrap_fast.errors import UserError
from camtrap_fast.ingest.camtrap_dp import is_camtrap_dp, load_camtrap_dp
from camtrap_fast.ingest.coco import load_coco_checked
from camtrap_fast.ingest.csv_table import load_csv
from camtrap_fast.ingest.folder import load_folder
from camtrap_fast.ingest.records import Record, Rejection
from camtrap_fast.ingest.remote import is_http, is_url

FORMATS = ("folder", "coco", "csv", "camtrap-dp")


def detect_format(source: Path) -> str:
    if is_camtrap_dp(source):
        return "camtrap-dp"
    if source.is_dir():
        return "folder"
    suffix = source.suffix.lower()
    if suffix == ".json":
        return "coco"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    raise UserError(f"{source}: unknown source format (expected a folder, a .json COCO Camera Traps file, a .csv "
                    "or a Camtrap DP datapackage.json; force one with --format folder|coco|csv|camtrap-dp)")


def load_records(source: str | Path, format: str = "auto", image_root: str | Path | None = None) -> tuple[str, list[Record]]:
    """Read SOURCE into records (one per listed image, files not yet opened) and name the format used."""
    format, records, _ = load_source(source, format, image_root)
    return format, records


def load_source(source: str | Path, format: str = "auto",
                image_root: str | Path | None = None) -> tuple[str, list[Record], list[Rejection]]:
    """Like `load_records`, plus what the source lists that cannot become a record (COCO annotations of
    images it does not list), as rejections for rejected.csv."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source}: no such file or folder")
    if format == "auto":
        format = detect_format(source)
    if format not in FORMATS:
        raise UserError(f"unknown format '{format}' (choose from auto, {', '.join(FORMATS)})")
    root: Path | str | None = None
    if image_root and is_url(str(image_root)):
        if not is_http(str(image_root)):
            raise UserError(f"--image-root {image_root}: only http(s):// URLs are read (a public bucket serves the "
                            "same objects over HTTPS, e.g. https://storage.googleapis.com/BUCKET/PREFIX)")
        if format not in ("coco", "csv"):
            raise UserError(f"--image-root {image_root}: a URL image root applies to COCO Camera Traps and CSV "
                            f"sources, not to a {format} source")
        root = str(image_root)
    elif image_root:
        root = Path(image_root)
        if not root.is_dir():
            raise UserError(f"{root}: --image-root is not a folder")
    if format == "camtrap-dp":
        return format, load_camtrap_dp(source, root), []
    if format == "folder":
        if not source.is_dir():
            raise UserError(f"{source}: --format folder needs a folder of class sub-folders")
        return format, load_folder(source), []
    if source.is_dir():
        raise UserError(f"{source}: --format {format} needs a file, not a folder")
    if format == "coco":
        return format, *load_coco_checked(source, root)
    return format, load_csv(source, root), []
