"""Fixtures for the service tests: the simulator, a config, the daemon in a subprocess with a
NOTIFY_SOCKET the test listens on (AF_UNIX datagrams, as systemd does)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Env as E2EEnv


@dataclass
class Env(E2EEnv):
    """The end-to-end Env, plus what the service tests read back."""

    def json(self, *args: str, expect: int = 0) -> Any:
        r = self.cli(*args, "--json")
        assert r.code == expect, r
        assert "Traceback" not in r.err, r.err
        return json.loads(r.out)

    def db(self) -> sqlite3.Connection:
        if not self.store_path.exists():
            raise sqlite3.OperationalError("no store yet")
        return sqlite3.connect(self.store_path)

    def cycles(self) -> list[dict[str, Any]]:
        if not self.store_path.exists():
            return []
        try:
            with self.db() as c:
                rows = c.execute("SELECT cycle_id, status, trigger, mode, document FROM cycles ORDER BY seq").fetchall()
        except sqlite3.OperationalError:  # the daemon is creating the store
            return []
        return [{"cycle_id": r[0], "status": r[1], "trigger": r[2], "mode": r[3], "errors": json.loads(r[4]).get("errors", [])} for r in rows]

    def active_users(self) -> int:
        try:
            with self.db() as c:
                return c.execute("SELECT count(*) FROM users WHERE status = 'active'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    def meta(self, key: str) -> str | None:
        try:
            with self.db() as c:
                row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # not created yet
            return None
        return row[0] if row else None


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from Env.running(tmp_path)


@dataclass
class Daemon:
    proc: subprocess.Popen
    sock: socket.socket
    messages: list[dict[str, str]] = field(default_factory=list)
    stderr_path: Path | None = None

    def __post_init__(self) -> None:
        # drain the socket all the time, as systemd does
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        self.sock.settimeout(0.05)
        while True:
            try:
                raw = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            fields = dict(line.split("=", 1) for line in raw.decode().splitlines() if "=" in line)
            self.messages.append(fields)

    def poll_notify(self, timeout: float = 0.1) -> None:
        time.sleep(timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_notify(0.05)
            if predicate():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.proc.returncode}) while waiting for {what}:\n{self.stderr()}")
        raise AssertionError(f"timed out waiting for {what}; notify: {self.messages[-5:]}\n{self.stderr()}")

    def notified(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        return [m for m in self.messages if key in m and (value is None or m[key] == value)]

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path and self.stderr_path.exists() else ""

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.poll_notify(0.05)
        return code


@pytest.fixture
def start_daemon(env: Env, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(*extra: str, interval: float = 1.0, watchdog_usec: int | None = 1_000_000, config: Path | None = None) -> Daemon:
        sock_path = tmp_path / f"notify-{len(started)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "WATCHDOG_", "NOTIFY_"))}
        child_env["NOTIFY_SOCKET"] = str(sock_path)
        if watchdog_usec:
            child_env["WATCHDOG_USEC"] = str(watchdog_usec)
        err = tmp_path / f"daemon-{len(started)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run", "--config", str(config or env.config_path), "--interval-seconds", str(interval), *extra],
            env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err.open("w"),
        )
        d = Daemon(proc, sock, stderr_path=err)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
        d.sock.close()


def integrity_ok(path: Path) -> bool:
    with sqlite3.connect(path) as c:
        return c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
