"""Guards end to end (R12, R15, the suspicious-read guard) and per-object failures.

Through the real CLI: `sync` exits 4 when changes are held or staged, `status --json` and the
report show the staged deactivations, `sync --approve-deactivations` applies the ones still
due. A change the store refuses fails on its own (the cycle ends `partial`, exit 3), is planned
again by every later cycle and listed in its report until it succeeds.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tests.e2e.conftest import entries
from tests.safety.conftest import D, SafetyEnv, snapshot


def _status(env: SafetyEnv) -> dict:
    result = env.cli("status", "--json")
    assert result.code == 0, result
    return json.loads(result.out)


def _team(env: SafetyEnv, n: int) -> tuple[str, list[str]]:
    t = env.tenant
    team = t.add_group("Team")
    ids = [t.add_user(f"user{i:02d}@{D}") for i in range(n)]
    for uid in ids:
        t.add_member(team, uid)
    t.assign(team)
    return team, ids


def test_a_read_that_suddenly_finds_almost_nobody_stages_every_deactivation(env: SafetyEnv) -> None:
    t = env.tenant
    team, ids = _team(env, 120)
    assert env.cycle().status == "succeeded"
    # someone unassigns the group by mistake; one user stays assigned directly
    t.assign(ids[0])
    t.unassign(team)
    before = {u["user_name"]: u["status"] for u in env.local_users().values()}
    report = env.sync(expect=4)
    assert report["status"] == "held"
    # judged on the users the delta touched, with the whole directory's numbers
    assert any("users this read touched" in n for n in report["notes"]), report["notes"]
    staged = entries(report, "deactivate")
    assert len(staged) == 119 and all(e["status"] == "staged" for e in staged)
    assert report["counts"].get("staged") == 119
    assert any("in scope" in e and "approve-deactivations" in e for e in report["errors"]), report["errors"]
    # nothing deactivated, but the other change of the cycle (the group's removal) is applied
    assert {u["user_name"]: u["status"] for u in env.local_users().values()} == before
    assert "Team" not in env.local_groups()
    warnings = " ".join(_status(env)["warnings"])
    assert "119 deactivation(s) staged" in warnings and "--approve-deactivations" in warnings
    # the next plain cycle keeps them staged
    assert env.cycle().status == "held"
    # the operator confirms
    report = env.sync("--approve-deactivations", expect=None)
    assert report["status"] == "succeeded", report["errors"]
    assert len([e for e in entries(report, "deactivate") if e["status"] == "success"]) == 119
    users = env.local_users()
    assert sum(u["status"] == "deactivated" for u in users.values()) == 119
    assert users[f"user00@{D}"]["status"] == "active"
    assert not any("staged" in w for w in _status(env)["warnings"])


def test_an_empty_answer_from_graph_never_empties_the_directory(env: SafetyEnv) -> None:
    t = env.tenant
    team, _ = _team(env, 110)
    assert env.cycle().status == "succeeded"
    t.unassign(team)  # Graph now says: nobody is assigned
    report = env.sync(expect=4)
    assert report["status"] == "held"
    assert all(u["status"] == "active" for u in env.local_users().values())


def test_a_small_team_leaving_scope_is_an_ordinary_change(env: SafetyEnv) -> None:
    """Below 100 active users the suspicious-read guard stays out of the way (R3 as written)."""
    team, _ = _team(env, 12)
    assert env.cycle().status == "succeeded"
    env.tenant.unassign(team)
    report = env.sync(expect=0)
    assert len([e for e in entries(report, "deactivate") if e["status"] == "success"]) == 12
    assert all(u["status"] == "deactivated" for u in env.local_users().values())


def test_r15_threshold_stages_deactivations_and_applies_every_other_change(env: SafetyEnv) -> None:
    t = env.tenant
    env.configure(sync={"deactivation_threshold": 3})
    team, ids = _team(env, 8)
    other = t.add_group("Other")
    t.add_member(other, ids[7])
    t.assign(other)
    assert env.cycle().status == "succeeded"
    for uid in ids[:5]:
        t.remove_member(team, uid)  # 5 leave scope > threshold 3
    t.rename_group(other, "Other Renamed")
    newcomer = t.add_user(f"newcomer@{D}")
    t.add_member(team, newcomer)
    report = env.sync(expect=4)
    assert report["status"] == "held"
    assert sorted(e["name"] for e in entries(report, "deactivate") if e["status"] == "staged") == [
        f"user0{i}@{D}" for i in range(5)
    ]
    assert any("sync.deactivation_threshold (3)" in e for e in report["errors"]), report["errors"]
    users = env.local_users()
    assert all(users[f"user0{i}@{D}"]["status"] == "active" for i in range(5))
    assert users[f"newcomer@{D}"]["status"] == "active"  # every other change is applied
    assert "Other Renamed" in env.local_groups()
    assert _status(env)["staged_deactivations"] == 5
    # the stored report shows them too, in every format
    stored = json.loads(env.cli("report", "latest", "--format", "json").out)
    assert [e["status"] for e in entries(stored, "deactivate")] == ["staged"] * 5
    assert "staged" in env.cli("report", "latest", "--format", "csv").out
    assert "staged" in env.cli("report", "latest", "--format", "html").out
    # one of them comes back before the approval: only those still due are applied
    t.add_member(team, ids[0])
    report = env.sync("--approve-deactivations")
    assert report["status"] == "succeeded", report
    assert sorted(e["name"] for e in entries(report, "deactivate")) == [f"user0{i}@{D}" for i in range(1, 5)]
    users = env.local_users()
    assert users[f"user00@{D}"]["status"] == "active"
    assert all(users[f"user0{i}@{D}"]["status"] == "deactivated" for i in range(1, 5))
    assert _status(env)["staged_deactivations"] == 0


def test_a_dry_run_over_the_threshold_exits_4_and_stages_nothing(env: SafetyEnv) -> None:
    t = env.tenant
    env.configure(sync={"deactivation_threshold": 2})
    team, ids = _team(env, 5)
    assert env.cycle().status == "succeeded"
    t.unassign(team)
    before = snapshot(env.store_path)
    report = env.sync("--dry-run", expect=4)
    assert report["status"] == "held" and report["dry_run"] is True
    assert snapshot(env.store_path) == before
    assert _status(env)["staged_deactivations"] == 0


def test_r12_the_last_administrator_is_never_deactivated(env: SafetyEnv) -> None:
    t = env.tenant
    admins = t.add_group("Split_Administrators")
    boss = t.add_user(f"boss@{D}")
    t.add_member(admins, boss)
    t.assign(admins)
    assert env.cycle().status == "succeeded"
    assert env.local_groups()["Administrators"]["members"] == [f"boss@{D}"]
    t.disable_user(boss)
    report = env.sync(expect=4)
    assert report["status"] == "held"
    assert any("Administrators" in e and "R12" in e for e in report["errors"])
    assert env.local_users()[f"boss@{D}"]["status"] == "active"
    assert env.local_groups()["Administrators"]["members"] == [f"boss@{D}"]
    # approving staged deactivations does not override R12
    assert env.sync("--approve-deactivations", expect=4)["status"] == "held"
    # a second administrator first, then the first may go
    deputy = t.add_user(f"deputy@{D}")
    t.add_member(admins, deputy)
    assert env.cycle().status == "succeeded"
    assert env.local_groups()["Administrators"]["members"] == [f"deputy@{D}"]
    assert env.local_users()[f"boss@{D}"]["status"] == "deactivated"


def test_a_failed_change_is_retried_every_cycle_and_listed_until_it_succeeds(env: SafetyEnv) -> None:
    t = env.tenant
    team, _ = _team(env, 3)
    assert env.cycle().status == "succeeded"
    stuck = t.add_user(f"stuck@{D}")
    fine = t.add_user(f"fine@{D}")
    t.add_member(team, stuck)
    t.add_member(team, fine)
    # the store refuses this one user (as a full disk or a constraint would)
    conn = sqlite3.connect(env.store_path)
    conn.execute(
        "CREATE TRIGGER refuse_stuck BEFORE INSERT ON users WHEN NEW.user_name = 'stuck@contoso.onmicrosoft.com'"
        " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    conn.commit()
    conn.close()
    for _ in range(2):  # listed by every cycle while it fails, even when Entra changes nothing
        report = env.sync(expect=3)
        assert report["status"] == "partial"
        failed = [e for e in report["entries"] if e["status"] == "failure"]
        assert {e["name"] for e in failed} >= {f"stuck@{D}"}, report["entries"]
        assert "injected failure" in " ".join(e["reason"] for e in failed)
        users = env.local_users()
        assert f"stuck@{D}" not in users and users[f"fine@{D}"]["status"] == "active"
        assert f"fine@{D}" in env.local_groups()["Team"]["members"]
    conn = sqlite3.connect(env.store_path)
    conn.execute("DROP TRIGGER refuse_stuck")
    conn.commit()
    conn.close()
    report = env.sync()
    assert report["status"] == "succeeded"
    assert [e["name"] for e in entries(report, "create", "user")] == [f"stuck@{D}"]
    assert f"stuck@{D}" in env.local_groups()["Team"]["members"]
    # and once it succeeded it is no longer listed
    assert env.cycle().entries == []


def test_a_change_that_keeps_failing_backs_off_in_cycles_and_stays_listed(env: SafetyEnv) -> None:
    t = env.tenant
    team, _ = _team(env, 2)
    assert env.cycle().status == "succeeded"
    t.add_member(team, t.add_user(f"stuck@{D}"))
    conn = sqlite3.connect(env.store_path)
    conn.execute(
        "CREATE TRIGGER refuse_stuck BEFORE INSERT ON users WHEN NEW.user_name = 'stuck@contoso.onmicrosoft.com'"
        " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    conn.commit()
    conn.close()

    def stuck_entry(report: Any) -> dict[str, Any]:
        (entry,) = [e for e in report.entries if e["name"] == f"stuck@{D}" and e["object_type"] == "user"]
        return entry

    # tried on each of the next three cycles...
    for _ in range(3):
        report = env.cycle()
        assert report.status == "partial" and stuck_entry(report)["status"] == "failure"
    # ...then left alone for two cycles, still listed, saying why and for how long
    for left in (2, 1):
        report = env.cycle()
        entry = stuck_entry(report)
        assert report.status == "partial" and entry["status"] == "skipped"
        assert "failed 3 time(s)" in entry["reason"] and "injected failure" in entry["reason"]
        assert f"tried again in {left} cycle(s)" in entry["reason"]
        with sqlite3.connect(env.store_path) as conn:  # the store keeps the failure's own text
            errors = {r[0] for r in conn.execute("SELECT last_error FROM failures")}
            assert "injected failure" in errors and not any("failed:" in e for e in errors), errors
        conn.close()
    conn = sqlite3.connect(env.store_path)
    conn.execute("DROP TRIGGER refuse_stuck")
    conn.commit()
    conn.close()
    report = env.cycle()
    assert report.status == "succeeded" and stuck_entry(report)["status"] == "success"
    assert f"stuck@{D}" in env.local_groups()["Team"]["members"]
    conn = sqlite3.connect(env.store_path)
    assert conn.execute("SELECT count(*) FROM failures").fetchone()[0] == 0
    conn.close()
