"""The package layout follows the data flow: a module imports only from its own stage or stages upstream."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "camtrap_fast"

# Stage rank along the data flow; the CLI alone may import everything.
STAGES = {
    "__init__": 0, "errors": 0, "environment": 0, "atomic": 0, "data": 0,  # __init__ holds only __version__
    "ingest": 1, "synth": 1,
    "shards": 2,
    "sampling": 3,
    "pipelines": 4,
    "model": 5, "losses": 5, "metrics": 5,
    "head": 6, "report": 6,
    "train": 7,
    "predict": 8,
    "cli": 9, "__main__": 9,
}


def _stage(module_path: Path) -> str:
    parts = module_path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported_stages(path: Path) -> set[str]:
    stages = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "camtrap_fast" and len(parts) > 1:
                stages.add(parts[1])
            elif parts[0] == "camtrap_fast":
                stages.add("__init__")
    return stages


def test_every_module_belongs_to_a_known_stage():
    unknown = {_stage(p) for p in PACKAGE.rglob("*.py")} - set(STAGES)
    assert not unknown, f"add {unknown} to STAGES in this test, in data-flow order"


def test_modules_import_only_from_upstream():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        stage = _stage(path)
        if stage in ("cli", "__main__"):
            continue
        for imported in _imported_stages(path):
            if imported != stage and STAGES.get(imported, 99) > STAGES[stage]:
                violations.append(f"{path.relative_to(PACKAGE)} ({stage}) imports {imported}")
    assert not violations, "\n".join(violations)


def test_no_catch_all_utils_module():
    assert not list(PACKAGE.rglob("utils.py"))
