"""Safety suite fixtures: the simulator over HTTPS, the real CLI, and a snapshot of the store.

``snapshot(env)`` captures everything a cycle may change except the audit trail (a failed
cycle adds its report, nothing else): comparing snapshots before and after a failed cycle
proves that it applied nothing (R14).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.simulator import Tenant
from tests.conftest import Result, run_syncd
from tests.e2e.conftest import Env

D = "contoso.onmicrosoft.com"

# Short retries for the source in CLI subprocesses (read by syncd.source.tuning); production
# keeps the defaults. Each knob only shortens waits between retries, never their number.
FAST_ENV = {"SYNCD_TUNING": "backoff_initial_s=0.02,backoff_max_s=0.1,connect_timeout_s=3,read_timeout_s=5,page_size=3"}

# tables a cycle may change; `cycles`/`entries` (the audit trail) are compared separately
STATE_TABLES = (
    "users", "groups", "memberships", "invites", "staged_deactivations",
    "entra_users", "entra_groups", "entra_members", "entra_assignments",
)
# meta keys that only the audit chain moves
AUDIT_META = ("chain_head",)


class SafetyEnv(Env):
    """The e2e Env with fast retries and timing, plus in-process helpers.

    The cycle under test always runs through the real CLI in a subprocess (exit code, JSON
    report); set-up cycles and checks run in process (``cycle``, ``local_users``,
    ``local_groups``) because a subprocess costs a Python start and msgraph's import.
    """

    def cycle(self, **options: Any) -> Any:
        """One cycle in process (set-up and recovery), with the current configuration."""
        from syncd.config import load
        from syncd.cycle import CycleOptions, run_cycle

        return run_cycle(load(str(self.config_path)), CycleOptions(**options))

    def local_users(self) -> dict[str, dict[str, Any]]:
        conn = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT id, entra_id, user_name, display_name, email, status, managed FROM users").fetchall()
            groups: dict[int, list[str]] = {}
            for uid, name in conn.execute(
                "SELECT m.user_id, g.name FROM memberships m JOIN groups g ON g.id = m.group_id ORDER BY g.name"
            ):
                groups.setdefault(uid, []).append(name)
        finally:
            conn.close()
        keys = ("id", "entra_id", "user_name", "display_name", "email", "status", "managed")
        return {r[2]: {**dict(zip(keys, r, strict=True)), "groups": groups.get(r[0], [])} for r in rows}

    def local_groups(self) -> dict[str, dict[str, Any]]:
        conn = sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT id, entra_id, name, managed FROM groups").fetchall()
            members: dict[int, list[str]] = {}
            for gid, name in conn.execute(
                "SELECT m.group_id, u.user_name FROM memberships m JOIN users u ON u.id = m.user_id ORDER BY u.user_name"
            ):
                members.setdefault(gid, []).append(name)
        finally:
            conn.close()
        return {r[2]: {"id": r[0], "entra_id": r[1], "name": r[2], "managed": bool(r[3]), "members": members.get(r[0], [])} for r in rows}

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return run_syncd(*args, "--config", str(self.config_path), env={**FAST_ENV, **(env or {})})

    def sync(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> dict[str, Any]:
        t0 = time.monotonic()
        result = self.cli("sync", "--json", *args, env=env)
        self.last_seconds = time.monotonic() - t0
        self.last_result = result
        assert "Traceback" not in result.err, result.err
        if expect is not None:
            assert result.code == expect, result
        return json.loads(result.out)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SafetyEnv]:
    # small pages so that every read spans several pages (faults can hit page 2)
    yield from SafetyEnv.running(tmp_path, Tenant(domain=D), users_page_size=3, groups_page_size=2, members_per_page=3)


def snapshot(store_path: Path) -> dict[str, Any]:
    """Every row of the directory, the Entra mirror and the sync state (not the audit trail)."""
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        out: dict[str, Any] = {}
        for table in STATE_TABLES:
            out[table] = sorted(map(tuple, conn.execute(f"SELECT * FROM {table}")), key=repr)  # noqa: S608
        out["meta"] = sorted(
            (k, v) for k, v in conn.execute("SELECT key, value FROM meta") if k not in AUDIT_META
        )
        return out
    finally:
        conn.close()


def cycle_count(store_path: Path) -> int:
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM cycles").fetchone()[0]
    finally:
        conn.close()


def integrity(store_path: Path) -> str:
    conn = sqlite3.connect(store_path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def directory_view(store_path: Path) -> dict[str, Any]:
    """The local directory by Entra id and names (local ids may differ between two stores)."""
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        users = {
            r[0] or f"local:{r[1]}": r[1:]
            for r in conn.execute("SELECT entra_id, user_name, display_name, email, status, managed FROM users")
        }
        groups = {
            r[0] or f"local:{r[1]}": r[1:] for r in conn.execute("SELECT entra_id, name, managed FROM groups")
        }
        members = sorted(
            conn.execute(
                "SELECT g.name, u.user_name FROM memberships m JOIN groups g ON g.id = m.group_id"
                " JOIN users u ON u.id = m.user_id"
            ).fetchall()
        )
        return {"users": users, "groups": groups, "members": members}
    finally:
        conn.close()
