"""Report fixtures: a real config and store on disk, reports saved through the real code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.config import Config
from syncd.config import load as load_config
from syncd.model import Change, EntraGroup, EntraUser, GraphRead
from syncd.report.model import CycleReport
from syncd.store.audit import save_report
from syncd.store.db import Store
from tests.conftest import Result, run_syncd

# names an attacker controls in Entra (displayName, UPN): every format must survive them
HOSTILE = [
    'Robert "Bobby" O\'Brien, Jr.',
    "line one\nline two\r\nline three",
    "<script>alert('x')</script>",
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "-2+3",
    "@HYPERLINK(\"http://evil\")",
    " =1+1",
    "Zoë \u202eevil\x1b[31mred\x1b[0m",
    "</td></tr><img src=x onerror=alert(1)>",
    "a & b; <b>bold</b>",
    '<script>document.title="pwned"</script>',
    '<img src=x onerror="document.body.dataset.pwned=1">',
]


def hostile_changes() -> list[Change]:
    changes: list[Change] = []
    for i, name in enumerate(HOSTILE):
        changes.append(Change("create", "user", f"00000000-0000-0000-0000-{i:012d}", name, local_id=100 + i,
                              reason="assigned to the application",
                              modified={"user_name": (None, name), "display_name": (None, name), "email": (None, f"u{i}@example.com")}))
    changes.append(Change("update", "user", "00000000-0000-0000-0000-000000000100", HOSTILE[2], local_id=7,
                          reason="changed in Entra ID", modified={"display_name": ("<old>", HOSTILE[3])}))
    changes.append(Change("add_member", "membership", "g-1", f"{HOSTILE[0]} -> {HOSTILE[2]}", reason="member in Entra ID"))
    changes.append(Change("deactivate", "user", "d-1", "staged@example.com", local_id=9, reason="R15", status="staged",
                          modified={"status": ("active", "deactivated")}))
    changes.append(Change("skip", "group", "g-2", "A" * 30, reason="name longer than 24 characters (30)", status="skipped", error=True))
    changes.append(Change("revoke", "invite", None, "invitee@example.com", local_id=3, reason="sync enabled (R13)",
                          modified={"status": ("open", "revoked")}))
    changes.append(Change("create", "group", "g-3", "Sales", local_id=None, reason="boom", status="failure"))
    return changes


def make_report(cycle_id: str, *, started: datetime | None = None, status: str = "succeeded", dry_run: bool = False,
                changes: list[Change] | None = None, mode: str = "full", trigger: str = "manual") -> CycleReport:
    started = started or datetime.now(UTC)
    rep = CycleReport(cycle_id=cycle_id, mode=mode, dry_run=dry_run, trigger=trigger,
                      started_at=started.isoformat(timespec="seconds"),
                      ended_at=(started + timedelta(seconds=3)).isoformat(timespec="seconds"), status=status,
                      graph_requests=12, throttled=2, phases={"read": 1.25, "plan": 0.5, "apply": 0.25})
    rep.add_changes(hostile_changes() if changes is None else changes)
    if status in ("partial", "failed"):
        rep.errors.append(f"group {'A' * 30!r} not provisioned: its name has 30 characters <script>")
    return rep


@dataclass
class Env:
    tmp: Path

    @property
    def store_path(self) -> Path:
        return self.tmp / "state" / "syncd.db"

    @property
    def config_path(self) -> Path:
        return self.tmp / "syncd.toml"

    def configure(self, retention_days: int = 400) -> None:
        secret = self.tmp / "client-secret"
        secret.write_text("s3cr3t\n")
        secret.chmod(0o600)
        self.config_path.write_text(
            "[entra]\n"
            'tenant_id = "contoso.onmicrosoft.com"\n'
            'client_id = "11111111-1111-1111-1111-111111111111"\n'
            'service_principal_id = "22222222-2222-2222-2222-222222222222"\n'
            f'client_secret_file = "{secret}"\n'
            f'[store]\npath = "{self.store_path}"\n'
            f"[audit]\nretention_days = {retention_days}\n"
        )

    def config(self) -> Config:
        return load_config(str(self.config_path))

    def store(self) -> Store:
        return Store(str(self.store_path))

    def save(self, *reports: CycleReport) -> None:
        with self.store() as store, store.transaction():
            for r in reports:
                save_report(store, r)

    def cli(self, *args: str) -> Result:
        return run_syncd(*args, "--config", str(self.config_path))

    def json(self, *args: str, expect: int = 0) -> Any:
        result = self.cli(*args)
        assert result.code == expect, result
        assert "Traceback" not in result.err
        return json.loads(result.out)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    e.configure()
    return e


def fake_reader(n_users: int = 3, *, prefix: str = "user"):
    """A Reader for run_cycle: a full read of ``n_users`` assigned users (and one group)."""

    def read(config, links, progress=None, on_page=None) -> GraphRead:
        users = {
            f"u-{prefix}-{i}": EntraUser(f"u-{prefix}-{i}", f"{prefix}{i}@contoso.com", f"{prefix.title()} {i}", None, True, "Member")
            for i in range(n_users)
        }
        assignments: dict[str, Any] = dict.fromkeys(users, "User")
        groups = {"g-sales": EntraGroup("g-sales", "Sales")}
        assignments["g-sales"] = "Group"
        return GraphRead(full=True, assignments=assignments, users=users, groups=groups,
                         members_added={"g-sales": dict.fromkeys(list(users)[:2], "user")},
                         delta_links={}, graph_requests=4, throttled=1)

    return read
