"""What makes a folder a training run, checked without torch (the CLI asks before its heavy imports)."""

from __future__ import annotations

from pathlib import Path

from camtrap_fast.errors import UserError

CONFIG_FILE = "config.json"


def require_run(root: Path) -> Path:
    """root/config.json, or a UserError saying what root is instead (a study's folder gets a hint)."""
    root = Path(root)
    config = root / CONFIG_FILE
    if not config.is_file():
        hint = (f"; it is a study: its runs are {root / 'runs' / 'REGIME' / 'LOSS' / 'seed-S'}"
                if (root / "study.json").is_file() and (root / "runs").is_dir() else "")
        raise UserError(f"{root}: not a camtrap-fast training run (no {CONFIG_FILE}){hint}")
    return config
