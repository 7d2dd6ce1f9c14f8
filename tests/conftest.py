"""Shared test helpers: run the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_syncd(*args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: str | None = None) -> Result:
    """Run ``python -m syncd`` as an operator would, with a clean, predictable environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def syncd_cli():
    return run_syncd


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    p = tmp_path / "client-secret"
    p.write_text("s3cr3t-value-do-not-leak\n")
    p.chmod(0o600)
    return p
