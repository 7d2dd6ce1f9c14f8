"""Incremental cycles plan over what the read touched, and reach what a full plan reaches."""

from __future__ import annotations

from pathlib import Path

from syncd.config import load
from syncd.cycle import CycleOptions, run_cycle
from syncd.simulator import Simulator, Tenant
from syncd.store import local
from syncd.store.db import Store

D = "contoso.onmicrosoft.com"


def _directory(store_path: Path) -> tuple[list, list]:
    with Store(str(store_path)) as s:
        users = sorted((u["user_name"], u["status"], u["display_name"], tuple(u["groups"])) for u in local.list_users(s))
        groups = sorted((g["name"], g["managed"], tuple(g["members"])) for g in local.list_groups(s))
    return users, groups


def test_scoped_incremental_cycles_match_a_full_cycle(tmp_path: Path) -> None:
    t = Tenant(domain=D)
    team = t.add_group("Team")
    admins = t.add_group("Split_Administrators")
    ids = [t.add_user(f"u{i:02d}@{D}") for i in range(30)]
    for uid in ids[:20]:
        t.add_member(team, uid)
    t.add_member(admins, ids[0])
    t.assign(team)
    t.assign(admins)
    with Simulator(t) as sim:
        cfg_path = tmp_path / "inc.toml"
        cfg_path.write_text(sim.config_toml(str(tmp_path / "inc.db")))
        full_path = tmp_path / "full.toml"
        full_path.write_text(sim.config_toml(str(tmp_path / "full.db")))
        inc, full = load(str(cfg_path)), load(str(full_path))
        assert run_cycle(inc, CycleOptions()).status == "succeeded"

        def step() -> list[str]:
            report = run_cycle(inc, CycleOptions())
            assert report.mode == "incremental" and report.status == "succeeded", report.errors
            run_cycle(full, CycleOptions(full=True))
            assert _directory(tmp_path / "inc.db") == _directory(tmp_path / "full.db")
            return report.notes

        t.update_user(ids[3], display_name="Renamed")
        assert any("users this read touched" in n for n in step())
        t.remove_member(team, ids[4])
        t.disable_user(ids[5])
        t.assign(ids[25])
        assert any("users this read touched" in n for n in step())
        # a group created and assigned within one delta brings all its members in
        late = t.add_group("Late")
        for uid in ids[20:25]:
            t.add_member(late, uid)
        t.assign(late)
        notes = step()
        assert any("users this read touched" in n for n in notes)
        assert "Late" in dict((g[0], g) for g in _directory(tmp_path / "inc.db")[1])
        # unassigning a group takes its members out, the last admin stays (R12 needs Administrators' members)
        t.unassign(late)
        t.rename_group(team, "Team Renamed")
        step()
        users = {u[0]: u for u in _directory(tmp_path / "inc.db")[0]}
        assert users[f"u20@{D}"][1] == "deactivated" and users[f"u03@{D}"][2] == "Renamed"
