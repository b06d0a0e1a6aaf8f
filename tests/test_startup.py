"""Instant answers: --help, COMMAND --help and argument or path errors come before torch (and DALI) are imported.

The cases are bench/startup.py's (the benchmark that times them against `python -c pass`); here one fresh
interpreter runs them all through the CLI's main() and checks sys.modules after each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import contextlib, io, json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from startup import cases
from camtrap_fast.cli import main
heavy = ("torch", "torchvision", "nvidia.dali")
report = []
with tempfile.TemporaryDirectory() as tmp:
    for name, (argv, expected) in cases(Path(tmp)).items():
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)
        loaded = [m for m in heavy if m in sys.modules]
        report.append({"name": name, "code": code, "expected": expected, "stderr": err.getvalue(), "loaded": loaded})
        if loaded:
            break
print(json.dumps(report))
"""


def test_every_answer_comes_before_the_heavy_imports():
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO / "bench")], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for case in report:
        assert not case["loaded"], f"{case['name']!r} imported {case['loaded']} before answering"
        assert case["code"] == case["expected"], case
        if case["expected"]:
            lines = case["stderr"].strip().splitlines()
            assert len(lines) == 1 and "error" in lines[0], case  # one line, never a traceback
    names = {case["name"] for case in report}
    from camtrap_fast.cli import COMMANDS

    for command in COMMANDS:  # every subcommand: its --help and at least one error
        assert f"{command} --help" in names and any(n.startswith(command + " ") and "help" not in n for n in names), \
            command
