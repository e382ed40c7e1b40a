"""Pyflakes' checks (ruff's F rules) over every Python file of the project: undefined names,
unused imports and variables, shadowed definitions, f-strings without placeholders. ruff is in
the ``dev`` extra, so CI's install brings it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_pyflakes_errors():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F", "--output-format", "concise",
                           "--no-cache", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
