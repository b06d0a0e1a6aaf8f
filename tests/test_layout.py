"""The package layout follows the data flow: a module imports only from its own stage or stages upstream,
no two modules import each other (directly or round a circle), and modules stay small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "camtrap_fast"

# Stage rank along the data flow; the CLI alone may import everything.
STAGES = {
    "__init__": 0, "errors": 0, "environment": 0, "atomic": 0, "devices": 0, "processes": 0, "lazy": 0, "data": 0,  # __init__: __version__
    "cycle_collector": 0,
    "ingest": 1, "synth": 1,
    "shards": 2,
    "sampling": 3,
    "pipelines": 4,
    "model": 5, "loss_config": 5, "losses": 5, "metrics": 5,
    "report": 6,
    "train": 7,
    "predict": 8, "study": 8, "html": 8, "app": 8,
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


# A module over this many lines must say at its top (first docstring) why it is long: "Long because ...".
MAX_LINES = 400
LONG_REASON = "Long because"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_targets(path: Path, modules: set[str]) -> set[str]:
    """Every camtrap_fast module `path` imports, at the top or inside a function (a lazy import still runs)."""
    targets = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from a.b import c` imports a.b.c when that is a module, else the name c from a.b
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                targets.add(name)
    return targets


def test_no_import_circle_between_modules():
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _import_targets(path, set(paths)) - {name} for name, path in paths.items()}
    # a package's __init__ re-exporting its submodules is not a circle unless a submodule imports the package
    circles, state = [], {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circles.append(" -> ".join(trail[trail.index(target):] + [target]) if target in trail
                               else f"{name} -> {target}")
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_modules_are_small_or_say_why():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and LONG_REASON not in docstring:
            long.append(f"{path.relative_to(PACKAGE)}: {lines} lines")
    assert not long, f"over {MAX_LINES} lines without '{LONG_REASON} ...' in the module docstring:\n" + "\n".join(long)
