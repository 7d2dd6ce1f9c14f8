"""SPEC §1 R12 (Administrators keeps an active member) and R15 (deactivation threshold)."""

from __future__ import annotations

from syncd.plan.guards import SUSPICIOUS_MIN_ACTIVE, Guarded, apply_guards
from syncd.plan.settings import PlanSettings

from .builders import ADMIN_ID, Local, Tenant, changes, one, run


def guard(t: Tenant, d: Local, approved: set[str] | None = None, **settings: object) -> Guarded:
    directory = d.build()
    p = run(t, directory, **settings)
    return apply_guards(p, directory, PlanSettings(**settings), approved)  # type: ignore[arg-type]


def _admins(members: list[str], *, extra_users: int = 0) -> tuple[Tenant, Local]:
    """Entra group Split_Administrators (g-admins, assigned) and its local twin, with users a1.."""
    t = Tenant().group("g-admins", "Split_Administrators", members=members, assigned=True)
    d = Local().admins(entra="g-admins")
    for i in range(1, 3):
        t.user(f"a{i}", f"admin{i}@contoso.com")
        d.user(i + 100, f"admin{i}@contoso.com", entra=f"a{i}")
    d.dir.members[ADMIN_ID] = {101, 102}
    return t, d


# --------------------------------------------------------------------------- R12


def test_r12_removing_the_last_active_administrator_is_held():
    t, d = _admins(members=[])
    d.dir.members[ADMIN_ID] = {101}
    t.user("a2", "admin2@contoso.com", assigned=True)  # a2 stays in scope, outside the group
    t.user("a1", "admin1@contoso.com", assigned=True)
    g = guard(t, d)
    assert g.held
    c = one(g.plan, "remove_member", "membership", "g-admins")
    assert c.status == "skipped" and "R12" in c.reason
    assert any("Administrators" in e and "no active member" in e for e in g.plan.errors)


def test_r12_deactivating_the_last_active_administrator_is_held():
    t, d = _admins(members=["a1"])
    d.dir.members[ADMIN_ID] = {101}
    t.disable("a1")
    g = guard(t, d)
    assert g.held
    c = one(g.plan, "deactivate", "user", "a1")
    assert c.status == "skipped" and "Administrators must keep at least one active member" in c.reason


def test_r12_removing_all_administrators_at_once_holds_every_removal():
    t, d = _admins(members=[])
    t.assign("a1", "a2")
    g = guard(t, d)
    assert g.held
    assert [c.status for c in changes(g.plan, "remove_member")] == ["skipped", "skipped"]


def test_r12_removing_one_of_two_administrators_goes_through():
    t, d = _admins(members=["a2"])
    t.assign("a1")
    g = guard(t, d)
    assert not g.held
    assert one(g.plan, "remove_member", "membership", "g-admins").status == "success"


def test_r12_a_new_administrator_in_the_same_cycle_lets_the_last_one_go():
    t, d = _admins(members=["a3"])
    d.dir.members[ADMIN_ID] = {101}
    t.user("a3", "admin3@contoso.com").assign("a1", "a2")
    g = guard(t, d)
    assert not g.held
    assert one(g.plan, "remove_member", "membership", "g-admins").status == "success"
    assert one(g.plan, "add_member", "membership", "g-admins").status == "success"


def test_r12_does_not_apply_before_administrators_has_an_active_member():
    # the store creates Administrators empty; an empty or all-deactivated one has nothing to keep
    t = Tenant().user("u1", "a@contoso.com")
    d = Local().user(5, "a@contoso.com", entra="u1", status="deactivated").admins(members=[5])
    assert not guard(t, d).held
    t = Tenant().user("u1", "a@contoso.com", enabled=False, assigned=True)
    d = Local().user(5, "a@contoso.com", entra="u1")
    assert not guard(t, d).held


def test_r12_administrators_unassigned_keeps_its_members_and_is_not_held():
    t, d = _admins(members=["a1", "a2"])
    t.unassign("g-admins").assign("a1", "a2")
    g = guard(t, d)
    assert not g.held
    assert one(g.plan, "update", "group", "g-admins").values["managed"] is False
    assert changes(g.plan, "remove_member") == []


def test_r12_last_administrator_out_of_scope_with_its_group_is_held():
    # Split_Administrators unassigned: Administrators keeps its members (R11), but they leave
    # scope and would all be deactivated (R3): the last one is held back
    t, d = _admins(members=["a1", "a2"])
    t.unassign("g-admins")
    g = guard(t, d)
    assert g.held
    assert [c.status for c in changes(g.plan, "deactivate")] == ["skipped", "skipped"]


def test_r12_unmanaged_administrators_with_a_local_member_is_kept_on_adoption():
    # the operator's own local admin is in Administrators; the Entra alias group arrives empty
    t = Tenant().group("g-admins", "Split_Administrators", assigned=True)
    d = Local().user(5, "owner@contoso.com").admins(members=[5])
    g = guard(t, d)
    assert g.held
    assert one(g.plan, "adopt", "group", "g-admins").status == "success"
    assert one(g.plan, "remove_member", "membership", "g-admins").status == "skipped"


def test_r12_other_changes_still_go_through_when_held():
    t, d = _admins(members=[])
    d.dir.members[ADMIN_ID] = {101}
    t.assign("a1", "a2").user("u9", "new@contoso.com", assigned=True)
    g = guard(t, d)
    assert g.held
    assert one(g.plan, "create", "user", "u9").status == "success"


# --------------------------------------------------------------------------- R15


def _leavers(n: int, *, stay: int = 0) -> tuple[Tenant, Local]:
    """n managed users who left scope (unassigned), and `stay` users who are still assigned."""
    t, d = Tenant(), Local()
    for i in range(n + stay):
        t.user(f"u{i}", f"user{i}@contoso.com", assigned=i >= n)
        d.user(i + 10, f"user{i}@contoso.com", entra=f"u{i}")
    return t, d


def test_r15_deactivations_over_the_threshold_are_staged_and_the_rest_applied():
    t, d = _leavers(3, stay=30)
    t.user("new", "new@contoso.com", assigned=True)
    g = guard(t, d, deactivation_threshold=2)
    assert g.held
    assert [c.status for c in changes(g.plan, "deactivate")] == ["staged"] * 3
    assert {c.entra_id for c in g.plan.changes if c.status == "staged"} == {"u0", "u1", "u2"}
    assert one(g.plan, "create", "user", "new").status == "success"
    assert any("deactivation_threshold" in e for e in g.plan.errors)


def test_r15_deactivations_up_to_the_threshold_are_applied():
    t, d = _leavers(2, stay=30)
    g = guard(t, d, deactivation_threshold=2)
    assert not g.held and not any(c.status == "staged" for c in g.plan.changes)
    assert [c.status for c in changes(g.plan, "deactivate")] == ["success"] * 2


def test_r15_threshold_zero_turns_the_guard_off():
    t, d = _leavers(40, stay=1)
    g = guard(t, d, deactivation_threshold=0)
    assert not g.held
    assert [c.status for c in changes(g.plan, "deactivate")] == ["success"] * 40


def test_r15_approved_staged_deactivations_are_applied():
    t, d = _leavers(3, stay=30)
    g = guard(t, d, approved={"u0", "u1", "u2"}, deactivation_threshold=2)
    assert not g.held
    assert [c.status for c in changes(g.plan, "deactivate")] == ["success"] * 3


def test_r15_approval_applies_only_deactivations_still_due():
    # u1 came back in scope since it was staged: approving it changes nothing for it
    t, d = _leavers(3, stay=30)
    t.assign("u1")
    g = guard(t, d, approved={"u0", "u1", "u2"}, deactivation_threshold=2)
    assert {c.entra_id for c in changes(g.plan, "deactivate")} == {"u0", "u2"}
    assert all(c.status == "success" for c in changes(g.plan, "deactivate"))


def test_r15_new_deactivations_beyond_the_approved_ones_are_counted_again():
    t, d = _leavers(6, stay=30)
    g = guard(t, d, approved={"u0", "u1", "u2"}, deactivation_threshold=2)
    assert g.held
    status = {c.entra_id: c.status for c in changes(g.plan, "deactivate")}
    assert status == {"u0": "success", "u1": "success", "u2": "success", "u3": "staged", "u4": "staged", "u5": "staged"}


def test_r15_suspicious_read_stages_every_deactivation_under_the_threshold():
    # a read that suddenly puts (almost) nobody in scope looks like a broken answer
    t, d = _leavers(SUSPICIOUS_MIN_ACTIVE)
    g = guard(t, d)
    assert g.held
    assert {c.status for c in changes(g.plan, "deactivate")} == {"staged"}
    assert any("in scope" in e for e in g.plan.errors)


def test_r15_suspicious_read_guard_is_off_with_threshold_zero():
    # "0 turns it off": the operator opted out of accidental-deletion prevention altogether
    t, d = _leavers(SUSPICIOUS_MIN_ACTIVE)
    g = guard(t, d, deactivation_threshold=0)
    assert not g.held
    assert {c.status for c in changes(g.plan, "deactivate")} == {"success"}


def test_r15_deactivations_held_by_r12_are_not_staged_too():
    t, d = _admins(members=["a1"])
    d.dir.members[ADMIN_ID] = {101}
    t.disable("a1")
    for i in range(5):
        t.user(f"u{i}", f"user{i}@contoso.com", assigned=True)
    g = guard(t, d, deactivation_threshold=1)
    c = one(g.plan, "deactivate", "user", "a1")
    assert c.status == "skipped"
    assert not any(c.status == "staged" for c in g.plan.changes)


def test_r12_members_of_a_group_that_takes_over_the_released_entra_id_do_not_count():
    # Split_Administrators renamed "Sales" (R8 releases Administrators; "Sales" is created with
    # the same Entra id) while the last administrator is disabled: adding members to the new
    # "Sales" must not count as Administrators gaining one
    t = (
        Tenant()
        .user("a1", "admin1@contoso.com", enabled=False)
        .user("u2", "user2@contoso.com")
        .group("g-admins", "Sales", members=["u2"], assigned=True)
    )
    d = Local().user(101, "admin1@contoso.com", entra="a1").admins(entra="g-admins", members=[101])
    g = guard(t, d)
    assert g.held
    assert one(g.plan, "deactivate", "user", "a1").status == "skipped"
