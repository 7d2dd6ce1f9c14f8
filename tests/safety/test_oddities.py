"""Graph data oddities, each with a defined outcome (R5, R9, R14, R11; SPEC §4).

- a null displayName: the user is provisioned with no display name;
- a null userPrincipalName: that user is skipped with an error naming it (R5), the others
  are provisioned, the cycle ends `partial` (exit 3);
- unicode and very long strings: stored and shown exactly; group name length counts
  characters, not bytes (R9);
- duplicate and replayed objects across pages: the same directory as a clean read;
- devices, service principals and nested groups as members: ignored (direct members only).
"""

from __future__ import annotations

from syncd.simulator import Fault
from tests.e2e.conftest import entries
from tests.safety.conftest import D, SafetyEnv, directory_view


def test_null_display_name_is_provisioned_without_one(env: SafetyEnv) -> None:
    t = env.tenant
    uid = t.add_user(f"anon@{D}")
    t.update_user(uid, display_name=None)
    t.assign(uid)
    report = env.sync()
    assert report["status"] == "succeeded"
    assert env.local_users()[f"anon@{D}"]["display_name"] is None
    # and a name that appears later is taken
    t.update_user(uid, display_name="Now Named")
    assert env.cycle().status == "succeeded"
    assert env.local_users()[f"anon@{D}"]["display_name"] == "Now Named"


def test_null_user_principal_name_is_skipped_with_an_error_naming_the_user(env: SafetyEnv) -> None:
    t = env.tenant
    ok = t.add_user(f"ok@{D}")
    broken = t.add_user(f"broken@{D}")
    with t.lock:
        t.users[broken].upn = None  # type: ignore[assignment]
    t.assign(ok)
    t.assign(broken)
    report = env.sync(expect=3)
    assert report["status"] == "partial"
    assert any(broken in e and "userPrincipalName" in e for e in report["errors"]), report["errors"]
    skipped = entries(report, "skip", "user")
    assert [e["entra_id"] for e in skipped] == [broken]
    assert set(env.local_users()) == {f"ok@{D}"}


def test_unicode_and_very_long_strings_are_kept_exactly(env: SafetyEnv) -> None:
    t = env.tenant
    fancy = "Zoë Ångström-Øre 東京 🚀 \u202eevil\u202c ﷽"
    long_name = "L" * 5000
    a = t.add_user(f"zoe@{D}", display_name=fancy)
    b = t.add_user(f"long@{D}", display_name=long_name)
    ok_group = t.add_group("Équipe 東京 🚀 ünïcødé")  # 20 characters, more bytes
    exact = t.add_group("Ω" * 24)  # 24 characters (48 bytes): the limit
    too_long = t.add_group("Ω" * 25)
    for g in (ok_group, exact, too_long):
        t.add_member(g, a)
        t.assign(g)
    t.assign(b)
    report = env.sync(expect=3)  # the 25-character group is an error (R9)
    users = env.local_users()
    assert users[f"zoe@{D}"]["display_name"] == fancy
    assert users[f"long@{D}"]["display_name"] == long_name
    groups = env.local_groups()
    assert {"Équipe 東京 🚀 ünïcødé", "Ω" * 24} <= set(groups)
    assert "Ω" * 25 not in groups
    assert any("25 characters" in e for e in report["errors"]), report["errors"]
    # every report format takes them
    for fmt in ("text", "csv", "html", "json"):
        result = env.cli("report", "latest", "--format", fmt)
        assert result.code == 0, (fmt, result)
        assert "Équipe 東京 🚀 ünïcødé" in result.out, fmt


def test_duplicate_and_replayed_objects_across_pages_change_nothing(env: SafetyEnv, tmp_path) -> None:
    t = env.tenant
    team = t.add_group("Team")
    ids = [t.add_user(f"u{i}@{D}") for i in range(10)]
    for uid in ids[:7]:
        t.add_member(team, uid)
    t.assign(team)
    for uid in ids[7:]:
        t.assign(uid)
    env.sim.faults.add(Fault(r"/users/delta", "duplicate_items", times=-1, after=1))
    env.sim.faults.add(Fault(r"/groups/delta", "duplicate_items", times=-1, after=1))
    env.sim.faults.add(Fault(r"appRoleAssignedTo", "duplicate_items", times=-1, after=1))
    report = env.sync()
    assert report["status"] == "succeeded"
    assert env.sim.faults.hits["duplicate_items"] >= 3
    assert len(entries(report, "create", "user")) == 10, "one create per user, replays or not"
    replayed = directory_view(env.store_path)
    # the same tenant read cleanly into another store gives the same directory
    clean_store = tmp_path / "clean.db"
    env.sim.faults.clear()
    (tmp_path / "clean.toml").write_text(env.sim.config_toml(str(clean_store)))
    from syncd.config import load
    from syncd.cycle import CycleOptions, run_cycle

    assert run_cycle(load(str(tmp_path / "clean.toml")), CycleOptions()).status == "succeeded"
    assert directory_view(clean_store) == replayed
    # an incremental read with replays after a change
    t.disable_user(ids[0])
    env.sim.faults.add(Fault(r"/users/delta", "duplicate_items", times=-1))
    report = env.sync()
    assert [e["name"] for e in entries(report, "deactivate")] == [f"u0@{D}"]


def test_devices_service_principals_and_nested_groups_are_not_members(env: SafetyEnv) -> None:
    t = env.tenant
    team = t.add_group("Team")
    nested = t.add_group("Nested")
    person = t.add_user(f"person@{D}")
    inner = t.add_user(f"inner@{D}")
    t.add_member(team, person)
    t.add_member(team, t.add_device("kiosk-01"))
    t.add_member(team, t.add_service_principal("Some App"))
    t.add_member(team, nested)
    t.add_member(nested, inner)
    t.assign(team)
    report = env.sync()
    assert report["status"] == "succeeded" and report["errors"] == []
    assert env.local_groups()["Team"]["members"] == [f"person@{D}"]
    assert set(env.local_users()) == {f"person@{D}"}
    assert "Nested" not in env.local_groups()
    assert {e["name"] for e in report["entries"]} == {f"person@{D}", "Team", f"Team / person@{D}"}
