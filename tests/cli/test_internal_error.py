"""An internal error is one line, and with log.level = "debug" the traceback its line
promises is in the log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from syncd import cli
from syncd.cli import app
from syncd.logs import setup_logging

def boom(*a, **k):
    raise RuntimeError("something syncd did not foresee")

setup_logging(sys.argv[1])
app.cli.main = boom
cli.main()
"""


def _run(level: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "boom.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), level], capture_output=True, text=True, timeout=60)


def test_an_internal_error_is_one_line_with_a_traceback_only_at_debug(tmp_path: Path) -> None:
    quiet = _run("info", tmp_path)
    assert quiet.returncode == 1
    assert quiet.stderr.strip().splitlines() == [
        'syncd: internal error: RuntimeError: something syncd did not foresee (run with log.level = "debug" for details)'
    ]
    loud = _run("debug", tmp_path)
    assert loud.returncode == 1
    assert "Traceback" in loud.stderr and 'raise RuntimeError("something syncd did not foresee")' in loud.stderr
    assert loud.stderr.strip().splitlines()[-1].startswith("syncd: internal error: RuntimeError")
