"""SPEC §1 rules R1-R13, end to end: simulator over HTTPS, real msal + msgraph-sdk, real CLI."""

from __future__ import annotations

import json

from tests.e2e.conftest import Env, entries

D = "contoso.onmicrosoft.com"


def test_r1_assigned_scope_direct_members_only(env: Env) -> None:
    t = env.tenant
    direct = t.add_user(f"direct@{D}")
    member = t.add_user(f"member@{D}")
    nested = t.add_user(f"nested@{D}")
    outsider = t.add_user(f"outsider@{D}")
    g = t.add_group("Sales")
    inner = t.add_group("Sales-EMEA")
    t.add_member(g, member)
    t.add_member(g, inner)
    t.add_member(inner, nested)
    t.assign(direct)
    t.assign(g)
    env.sync()
    users = env.users()
    assert set(users) == {f"direct@{D}", f"member@{D}"}
    assert f"outsider@{D}" not in users and outsider
    assert env.groups()["Sales"]["members"] == [f"member@{D}"]


def test_r1_transitive_members_and_scope_all(env: Env) -> None:
    t = env.tenant
    member = t.add_user(f"member@{D}")
    nested = t.add_user(f"nested@{D}")
    t.add_user(f"outsider@{D}")
    g = t.add_group("Sales")
    inner = t.add_group("Sales-EMEA")
    t.add_member(g, member)
    t.add_member(g, inner)
    t.add_member(inner, nested)
    t.assign(g)
    env.configure(sync={"group_members": "transitive"})
    env.sync()
    assert set(env.users()) == {f"member@{D}", f"nested@{D}"}
    assert env.groups()["Sales"]["members"] == sorted([f"member@{D}", f"nested@{D}"])
    env.configure(sync={"scope": "all"})
    env.sync("--full")
    assert set(env.users()) == {f"member@{D}", f"nested@{D}", f"outsider@{D}"}
    assert {"Sales", "Sales-EMEA"} <= set(env.groups())


def test_r2_disabled_user_never_created_and_existing_deactivated(env: Env) -> None:
    t = env.tenant
    off = t.add_user(f"off@{D}", enabled=False)
    on = t.add_user(f"on@{D}")
    t.assign(off)
    t.assign(on)
    env.sync()
    assert set(env.users()) == {f"on@{D}"}
    t.disable_user(on)
    report = env.sync()
    assert env.users()[f"on@{D}"]["status"] == "deactivated"
    assert [e["name"] for e in entries(report, "deactivate")] == [f"on@{D}"]


def test_r3_left_scope_and_deleted_users_are_deactivated_never_deleted(env: Env) -> None:
    t = env.tenant
    a, b, c, d = (t.add_user(f"{n}@{D}") for n in "abcd")
    g = t.add_group("Team")
    t.add_member(g, c)
    for p in (a, b, d, g):
        t.assign(p)
    env.sync()
    t.unassign(a)
    t.soft_delete_user(b)
    t.remove_member(g, c)
    t.hard_delete_user(d)
    report = env.sync()
    users = env.users()
    assert len(users) == 4
    assert all(users[f"{n}@{D}"]["status"] == "deactivated" for n in "abcd")
    assert len(entries(report, "deactivate")) == 4


def test_r3_skip_out_of_scope_deactivations(env: Env) -> None:
    t = env.tenant
    a = t.add_user(f"a@{D}")
    b = t.add_user(f"b@{D}")
    t.assign(a)
    t.assign(b)
    env.configure(sync={"skip_out_of_scope_deactivations": True})
    env.sync()
    t.unassign(a)
    t.soft_delete_user(b)
    env.sync()
    users = env.users()
    assert users[f"a@{D}"]["status"] == "active"
    assert users[f"b@{D}"]["status"] == "deactivated"  # deleted users are deactivated anyway


def test_r4_reactivation_keeps_the_same_record(env: Env) -> None:
    t = env.tenant
    a = t.add_user(f"a@{D}")
    g = t.add_group("Team")
    t.add_member(g, a)
    t.assign(g)
    env.sync()
    before = env.users()[f"a@{D}"]
    t.disable_user(a)
    env.sync()
    assert env.users()[f"a@{D}"]["groups"] == []
    t.enable_user(a)
    report = env.sync()
    after = env.users()[f"a@{D}"]
    assert after["id"] == before["id"] and after["status"] == "active"
    assert after["groups"] == ["Team"]
    assert len(env.users()) == 1
    assert entries(report, "reactivate")


def test_r5_attribute_mapping_and_guests(env: Env) -> None:
    t = env.tenant
    guest = t.add_user(f"ada_fabrikam.com#EXT#@{D}", display_name="Ada", user_type="Guest")
    nomail = t.add_user(f"nomail@{D}", mail=None)
    withmail = t.add_user(f"bob@{D}", display_name="Bob", mail="robert@contoso.com")
    for p in (guest, nomail, withmail):
        t.assign(p)
    env.sync()
    users = env.users()
    assert users["ada@fabrikam.com"]["email"] == "ada@fabrikam.com"
    assert users["ada@fabrikam.com"]["display_name"] == "Ada"
    assert users[f"bob@{D}"]["email"] == f"bob@{D}"
    t.update_user(withmail, display_name="Robert")
    report = env.sync()
    assert entries(report, "update")[0]["modified"] == {"display_name": {"old": "Bob", "new": "Robert"}}

    env.configure(mapping={"email": "mail"})
    report = env.sync("--full", expect=3)
    assert env.users()[f"bob@{D}"]["email"] == "robert@contoso.com"
    skipped = [e for e in report["errors"] if "nomail" in e]
    assert skipped and "mail" in skipped[0]

    env.configure(mapping={"email": "originalUserPrincipalName"})
    env.sync("--full", expect=0)
    assert env.users()["ada@fabrikam.com"]["email"] == f"ada_fabrikam.com#EXT#@{D}"


def test_r6_adopts_unmanaged_local_user_case_insensitively(env: Env) -> None:
    assert env.cli("users", "add", "ADA@contoso.onmicrosoft.com", "--name", "Local Ada").code == 0
    local_id = env.users()["ADA@contoso.onmicrosoft.com"]["id"]
    a = env.tenant.add_user(f"ada@{D}", display_name="Ada")
    env.tenant.assign(a)
    report = env.sync()
    users = env.users()
    assert len(users) == 1
    (user,) = users.values()
    assert user["id"] == local_id and user["managed"] and user["entra_id"] == a
    assert entries(report, "adopt", "user")


def test_r7_r8_groups_created_adopted_and_admin_mapping(env: Env) -> None:
    assert env.cli("groups", "add", "sales").code == 0
    t = env.tenant
    u = t.add_user(f"u@{D}")
    sales = t.add_group("Sales")
    admins = t.add_group("Split_Administrators")
    eng = t.add_group("Engineering")
    for g in (sales, admins, eng):
        t.add_member(g, u)
        t.assign(g)
    report = env.sync()
    groups = env.groups()
    assert groups["Sales"]["entra_id"] == sales and groups["Sales"]["managed"]  # adopted, takes Entra's name
    assert groups["Administrators"]["entra_id"] == admins
    assert groups["Engineering"]["managed"]
    assert {e["action"] for e in entries(report, object_type="group")} >= {"adopt", "create"}
    t.rename_group(admins, "Split_Administrators")  # no-op rename keeps the reserved name
    t.unassign(admins)
    env.sync()
    groups = env.groups()
    assert groups["Administrators"]["managed"] is False
    assert groups["Administrators"]["members"] == [f"u@{D}"]


def test_r9_long_group_names_skipped_members_still_provisioned(env: Env) -> None:
    t = env.tenant
    u = t.add_user(f"u@{D}")
    g = t.add_group("A" * 25)
    t.add_member(g, u)
    t.assign(g)
    report = env.sync(expect=3)
    assert report["status"] == "partial"
    assert "A" * 25 not in env.groups()
    assert f"u@{D}" in env.users()
    assert any("25" in e and "A" * 25 in e for e in report["errors"])


def test_r10_name_conflicts_block_both_groups(env: Env) -> None:
    t = env.tenant
    g1 = t.add_group("Sales")
    g2 = t.add_group("SALES")
    a1 = t.add_group("Split_Administrators")
    a2 = t.add_group("Administrators")
    for g in (g1, g2, a1, a2):
        t.assign(g)
    report = env.sync(expect=3)
    groups = env.groups()
    assert "Sales" not in groups and "SALES" not in groups
    assert groups["Administrators"]["entra_id"] is None
    errors = " ".join(report["errors"])
    for gid in (g1, g2, a1, a2):
        assert gid in errors


def test_r11_memberships_renames_and_removals(env: Env) -> None:
    t = env.tenant
    a = t.add_user(f"a@{D}")
    b = t.add_user(f"b@{D}")
    g = t.add_group("Team")
    other = t.add_group("Other")
    c = t.add_user(f"c@{D}")
    t.add_member(g, a)
    t.add_member(g, c)
    t.assign(g)
    t.assign(other)
    t.assign(b)
    t.assign(a)  # a stays in scope after leaving Team
    env.sync()
    t.add_member(g, b)
    t.remove_member(g, a)
    t.remove_member(g, c)
    t.rename_group(g, "Team2")
    t.delete_group(other)
    report = env.sync()
    groups = env.groups()
    assert "Team" not in groups and groups["Team2"]["members"] == [f"b@{D}"]
    assert "Other" not in groups
    assert entries(report, "delete", "group")
    assert [e["name"] for e in entries(report, "remove_member")] == [f"Team2 / a@{D}"]
    assert entries(report, "add_member")
    users = env.users()
    assert users[f"a@{D}"]["status"] == "active" and users[f"a@{D}"]["groups"] == []
    # c was only in scope through Team: it is deactivated, which takes it out of its groups
    assert users[f"c@{D}"]["status"] == "deactivated"


def test_r12_administrators_keeps_its_last_active_member(env: Env) -> None:
    t = env.tenant
    a = t.add_user(f"a@{D}")
    admins = t.add_group("Split_Administrators")
    t.add_member(admins, a)
    t.assign(admins)
    env.sync()
    t.remove_member(admins, a)
    t.assign(a)  # still in scope, just not an admin
    report = env.sync(expect=4)
    assert report["status"] == "held"
    assert env.groups()["Administrators"]["members"] == [f"a@{D}"]
    assert any("Administrators" in e for e in report["errors"])
    b = t.add_user(f"b@{D}")
    t.add_member(admins, b)
    env.sync(expect=0)
    assert env.groups()["Administrators"]["members"] == [f"b@{D}"]


def test_r13_first_cycle_enables_sync_and_revokes_invites(env: Env) -> None:
    assert env.cli("invites", "add", "guest@example.com").code == 0
    assert env.cli("users", "add", "local@example.com").code == 0
    assert env.cli("groups", "add", "LocalGroup").code == 0
    a = env.tenant.add_user(f"a@{D}")
    env.tenant.assign(a)
    dry = env.sync("--dry-run")
    assert dry["dry_run"] and entries(dry, "revoke", "invite")
    assert env.cli("users", "add", "still-allowed@example.com").code == 0  # a dry run does not enable
    report = env.sync()
    assert [e["name"] for e in entries(report, "revoke", "invite")] == ["guest@example.com"]
    invites = json.loads(env.cli("invites", "list", "--json").out)
    assert invites[0]["status"] == "revoked"
    for args in (["invites", "add", "x@example.com"], ["users", "add", "new@example.com"], ["groups", "add", "New"]):
        result = env.cli(*args)
        assert result.code == 1 and "enabled" in result.err, result
    result = env.cli("users", "deactivate", f"a@{D}")
    assert result.code == 1 and "managed by Entra ID" in result.err
    # unmanaged users and groups stay under local control
    assert env.cli("users", "deactivate", "local@example.com").code == 0
    assert env.cli("groups", "add-member", "LocalGroup", "still-allowed@example.com").code == 0
    assert env.groups()["LocalGroup"]["members"] == ["still-allowed@example.com"]
    status = json.loads(env.cli("status", "--json").out)
    assert status["enabled"] is True


def test_dry_run_changes_nothing_and_exits_as_the_real_cycle_would(env: Env) -> None:
    t = env.tenant
    g = t.add_group("B" * 30)
    t.assign(g)
    t.assign(t.add_user(f"a@{D}"))
    report = env.sync("--dry-run", expect=3)
    assert report["dry_run"] and entries(report, "create", "user")
    assert env.users() == {}
    reports = json.loads(env.cli("reports", "--json").out)
    assert reports[0]["dry_run"] is True


def test_show_gives_the_listed_row_of_one_user_or_group(env: Env) -> None:
    t = env.tenant
    ann, bob = t.add_user(f"ann@{D}"), t.add_user(f"bob@{D}")
    sales, ops = t.add_group("Sales"), t.add_group("Ops")
    for g in (sales, ops):
        t.add_member(g, ann)
        t.assign(g)
    t.add_member(ops, bob)
    env.sync()
    users, groups = env.users(), env.groups()
    for name in (f"ann@{D}", f"bob@{D}"):
        shown = json.loads(env.cli("users", "show", name, "--json").out)
        assert {k: shown[k] for k in users[name]} == users[name]
        assert shown["last_cycle_id"] and shown["created_at"]
    assert users[f"ann@{D}"]["groups"] == ["Ops", "Sales"]
    for name in ("Sales", "Ops"):
        assert json.loads(env.cli("groups", "show", name, "--json").out) == groups[name]
    assert groups["Ops"]["members"] == [f"ann@{D}", f"bob@{D}"]
