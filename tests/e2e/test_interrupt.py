"""Ctrl-C on `syncd sync`: before the commit nothing is applied ("interrupted", 130); after
it, the cycle was applied, so syncd says so and exits as the cycle did."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from tests.e2e.conftest import Env


def _committed(env: Env) -> bool:
    if not env.store_path.exists():
        return False
    conn = sqlite3.connect(f"file:{env.store_path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT count(*) FROM cycles").fetchone()[0] > 0
    except sqlite3.OperationalError:  # (not created yet)
        return False
    finally:
        conn.close()


def test_ctrl_c_after_the_commit_says_committed_and_exits_as_the_cycle_did(env: Env) -> None:
    t = env.tenant
    for i in range(1500):  # a report bigger than a pipe's buffer: the output blocks after the commit
        t.assign(t.add_user(f"user{i}@contoso.onmicrosoft.com"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sync", "--json", "--config", str(env.config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")},
    )
    try:
        deadline = time.monotonic() + 120
        while not _committed(env):
            assert proc.poll() is None and time.monotonic() < deadline, "the cycle never committed"
            time.sleep(0.05)
        time.sleep(0.5)  # (writing its report to the pipe nobody reads yet)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    line = err.decode().strip().splitlines()[-1]
    assert "interrupted" in line and "was committed (succeeded)" in line and "syncd report" in line, err
    assert "Traceback" not in err.decode()
    assert sum(u["status"] == "active" for u in env.users().values()) == 1500
