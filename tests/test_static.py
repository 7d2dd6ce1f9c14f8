"""The code passes ruff and mypy as configured in pyproject.toml (both run by the suite, so a
lint or type error is a red test, not a note for later)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "tool",
    [
        ["ruff", "check", "syncd", "tests", "bench"],
        ["mypy", "syncd"],
    ],
    ids=["ruff", "mypy"],
)
def test_static_checks_pass(tool: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", *tool], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
