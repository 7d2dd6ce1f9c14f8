"""Helpers for the request-count and delta-correctness tests: the simulator in a thread and
syncd's real cycle (run_cycle with the real Graph source, in process, or the real CLI)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd import config as config_mod
from syncd.cycle import CycleOptions, run_cycle
from syncd.report.model import CycleReport
from syncd.simulator import Simulator
from tests.conftest import run_syncd


@dataclass
class Syncd:
    """One local store synced from ``sim``: cycles in process (fast) or through the CLI."""

    sim: Simulator
    dir: Path
    threshold: int = 0  # the guards are not what these tests are about

    @property
    def store(self) -> Path:
        return self.dir / "state" / "syncd.db"

    @property
    def config_path(self) -> Path:
        path = self.dir / "syncd.toml"
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(self.sim.config_toml(str(self.store), sync={"deactivation_threshold": self.threshold}))
        return path

    def cycle(self, *, full: bool = False) -> tuple[CycleReport, int]:
        """One cycle in process; returns the report and the Graph requests the simulator saw."""
        config = config_mod.load(str(self.config_path))
        self.sim.reset_log()
        report = run_cycle(config, CycleOptions(full=full))
        assert report.status in ("succeeded", "partial"), (report.status, report.errors)
        return report, self.sim.graph_request_count()

    def cli_cycle(self, *args: str) -> tuple[dict[str, Any], int]:
        self.sim.reset_log()
        result = run_syncd("sync", "--json", *args, "--config", str(self.config_path))
        assert result.code in (0, 3), result
        return json.loads(result.out), self.sim.graph_request_count()


def snapshot(db: Path) -> dict[str, Any]:
    """What a store holds that a cycle decides: the local directory and the Entra mirror.

    Local ids, timestamps and audit rows are left out (two stores may number rows
    differently); users are keyed by Entra id (or user_name when unmanaged), groups by name.
    """
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        users = {
            (r[0] or r[1]): r[1:]
            for r in conn.execute("SELECT entra_id, user_name, display_name, email, status, managed FROM users")
        }
        groups = {r[0]: r[1:] for r in conn.execute("SELECT name, entra_id, managed FROM groups")}
        members = sorted(conn.execute(
            "SELECT g.name, coalesce(u.entra_id, u.user_name) FROM memberships m"
            " JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id"
        ).fetchall())
        mirror = {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("entra_users", "entra_groups", "entra_members", "entra_assignments")
        }
        staged = sorted(r[0] for r in conn.execute("SELECT entra_id FROM staged_deactivations"))
    finally:
        conn.close()
    return {"users": users, "groups": groups, "members": members, "mirror": mirror, "staged": staged}


def copy_store(src: Path, dst: Path) -> None:
    """A consistent copy of a store (SQLite backup API: WAL content included)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(src)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
