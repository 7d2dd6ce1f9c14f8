"""Never deactivate, remove or duplicate without Entra's word (R6a, R14a), end to end.

Each test is one of the ways syncd did it before, over the real CLI against the simulator:
an on-demand read taken as the whole truth about a group, and a name given twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.simulator.sample import demo_tenant
from tests.e2e.conftest import Env, entries

D = "contoso.onmicrosoft.com"


@pytest.fixture
def demo(tmp_path: Path):
    yield from Env.running(tmp_path, demo_tenant())


def _directory(env: Env) -> tuple[dict[str, str], dict[str, list[str]]]:
    users = {name: u["status"] for name, u in env.users().items()}
    groups = {name: g["members"] for name, g in env.groups().items()}
    return users, groups


@pytest.mark.parametrize("who", ["karen.jones", "ada.lovelace"])
@pytest.mark.parametrize("dry", [False, True])
def test_a_user_provisioned_on_demand_leaves_the_other_members_of_its_groups_alone(demo: Env, who: str, dry: bool) -> None:
    """`sync --user X` once replaced the mirror's members of X's groups by X alone: the next
    cycle, with nothing changed in Entra, deactivated 8 (13 for ada, who is an admin)."""
    demo.sync(expect=3)  # (partial: the deliberately long group name)
    before = _directory(demo)
    report = demo.sync("--user", f"{who}@{D}", *(["--dry-run"] if dry else []), expect=0)
    assert entries(report, "deactivate") == [] and entries(report, "remove_member") == []
    after = demo.sync(expect=3)
    assert entries(after, "deactivate") == [], entries(after, "deactivate")
    assert entries(after, "remove_member") == []
    assert _directory(demo) == before


def test_a_group_provisioned_on_demand_is_no_word_on_its_members_other_groups(demo: Env) -> None:
    """A member of an unassigned group who is in scope through another group is not
    deactivated by an on-demand read of the first (that read cannot see the other)."""
    t = demo.tenant
    h = t.demo
    demo.sync(expect=3)
    member = t.members_of(h.sales)[0]
    t.add_member(h.engineering, member)  # in scope twice now; Entra's next delta says so
    t.unassign(h.sales)
    report = demo.sync("--group", h.sales, expect=0)
    assert [e for e in entries(report, "deactivate") if e["entra_id"] == member] == []
    assert [e["name"] for e in entries(report, "delete", "group")] == ["Sales"]
    after = demo.sync(expect=3)
    assert member not in {e["entra_id"] for e in entries(after, "deactivate")}
    assert env_user(demo, member)["status"] == "active"


def env_user(env: Env, entra_id: str) -> dict:
    return next(u for u in env.users().values() if u["entra_id"] == entra_id)


def test_r6a_a_rename_onto_a_local_users_name_fails_naming_both_until_the_name_is_free(env: Env) -> None:
    t = env.tenant
    env.cli("users", "add", f"x@{D}", "--name", "Local X")
    uid = t.add_user(f"someone@{D}")
    t.assign(uid)
    env.sync()
    t.update_user(uid, upn=f"X@{D}")
    report = env.sync(expect=3)
    assert report["status"] == "partial"
    (skip,) = [e for e in entries(report, "skip", "user") if e["entra_id"] == uid]
    assert skip["status"] == "skipped" and f"x@{D}" in skip["reason"] and "unmanaged" in skip["reason"]
    assert any(f"X@{D}" in error and f"x@{D}" in error for error in report["errors"])
    names = [u["user_name"].casefold() for u in env.users().values()]
    assert len(names) == len(set(names)), names
    assert env.users()[f"someone@{D}"]["status"] == "active"
    # tried again every cycle, no back-off: once Entra moves on, it applies
    assert entries(env.sync(expect=3), "skip", "user")
    t.update_user(uid, upn=f"x2@{D}")
    report = env.sync()
    assert [e["modified"]["user_name"] for e in entries(report, "update", "user")] == [{"old": f"someone@{D}", "new": f"x2@{D}"}]


def test_r6a_the_name_of_a_deactivated_user_is_not_given_to_another(env: Env) -> None:
    t = env.tenant
    old = t.add_user(f"pat@{D}")
    t.assign(old)
    env.sync()
    t.hard_delete_user(old)  # deactivated here, keeping its name and history
    new = t.add_user(f"pat@{D}")  # Entra gives the UPN to someone else
    t.assign(new)
    report = env.sync(expect=3)
    assert [e["entra_id"] for e in entries(report, "deactivate")] == [old]
    (skip,) = entries(report, "skip", "user")
    assert skip["entra_id"] == new and "deactivated" in skip["reason"] and old in skip["reason"]
    users = env.users()
    assert list(users) == [f"pat@{D}"] and users[f"pat@{D}"]["entra_id"] == old


@pytest.mark.parametrize("answers", ["changed", "some"])
def test_a_delta_object_carrying_only_what_changed_changes_only_that(env: Env, answers: str) -> None:
    """Graph's delta overview: an updated user comes back with only its changed properties
    (always so under Prefer: return=minimal). A delta object without accountEnabled once
    deactivated the user; one without mail or displayName blanked them."""
    t = env.tenant
    env.configure(mapping={"email": "mail"})
    env.sim.quirks.set(properties=answers)
    kept = t.add_user(f"kept@{D}", display_name="Kept", mail=f"kept.mail@{D}")
    gone = t.add_user(f"gone@{D}", display_name="Gone", mail=f"gone.mail@{D}")
    for uid in (kept, gone):
        t.assign(uid)
    env.sync()
    t.update_user(kept, display_name="Kept Renamed")
    t.disable_user(gone)
    report = env.sync()
    [update] = entries(report, "update")
    assert update["entra_id"] == kept
    assert [e["entra_id"] for e in entries(report, "deactivate")] == [gone]
    users = env.users()
    assert users[f"kept@{D}"]["status"] == "active" and users[f"kept@{D}"]["display_name"] == "Kept Renamed"
    assert users[f"kept@{D}"]["email"] == f"kept.mail@{D}"
    assert users[f"gone@{D}"]["status"] == "deactivated"
    # and a round that repeats the rename changes nothing more
    assert entries(env.sync(), "update") == []
