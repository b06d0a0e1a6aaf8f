"""Which output format `predict --out` names, decided without torch (the CLI checks it before its heavy imports)."""

from __future__ import annotations

from pathlib import Path

from camtrap_fast.errors import UserError

FORMATS = ("csv", "md-json", "camtrap-dp")


def choose_format(out: Path, given: str | None) -> str:
    """--format, or from --out: .csv -> csv, .json -> md-json, .../datapackage.json -> camtrap-dp."""
    if given is not None:
        if given not in FORMATS:
            raise UserError(f"--format {given}: choose {', '.join(FORMATS)}")
        return given
    if out.name == "datapackage.json":
        return "camtrap-dp"
    if str(out) == "-" or out.suffix.lower() == ".csv":
        return "csv"
    if out.suffix.lower() == ".json":
        return "md-json"
    if out.is_dir():
        raise UserError(f"{out}: is a folder; name a file (.csv, or .json for MegaDetector format), or "
                        "FOLDER/datapackage.json (or --format camtrap-dp) for Camtrap DP")
    raise UserError(f"--out {out}: cannot tell the format from its name; end it in .csv, .json or "
                    "datapackage.json, or give --format csv, md-json or camtrap-dp")
