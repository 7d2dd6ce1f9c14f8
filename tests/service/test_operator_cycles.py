"""Cycles as an operator asks for them: `sync --user` with what syncd shows for a user, and
`status` saying why the last cycle was held."""

from __future__ import annotations

GUEST_UPN = "jane.doe_fabrikam.com#EXT#@contoso.onmicrosoft.com"


def _guest_and_friends(env) -> tuple[str, str]:
    t = env.tenant
    guest = t.add_user(GUEST_UPN, "Jane Doe (Fabrikam)", mail="jane.doe@fabrikam.com", user_type="Guest")
    ada = t.add_user("ada@contoso.onmicrosoft.com", "Ada")
    for uid in (guest, ada):
        t.assign(uid)
    return guest, ada


def test_sync_user_takes_the_name_syncd_shows_for_a_guest(env) -> None:
    guest, _ = _guest_and_friends(env)
    assert env.cli("sync").code == 0
    users = env.users()
    assert "jane.doe@fabrikam.com" in users  # the name syncd shows (and explain suggests)
    env.tenant.update_user(guest, display_name="Jane Doe (Fabrikam, renamed)")
    report = env.sync("--user", "jane.doe@fabrikam.com")
    assert report["mode"] == "on_demand" and report["status"] == "succeeded", report["errors"]
    updates = [e for e in report["entries"] if e["action"] == "update"]
    assert [(e["entra_id"], e["modified"]["display_name"]["new"]) for e in updates] == [(guest, "Jane Doe (Fabrikam, renamed)")]


def test_sync_user_takes_a_local_id_and_an_email_too(env) -> None:
    guest, ada = _guest_and_friends(env)
    assert env.cli("sync").code == 0
    local_id = env.users()["ada@contoso.onmicrosoft.com"]["id"]
    env.tenant.update_user(ada, display_name="Ada L.")
    env.tenant.update_user(guest, display_name="Jane D.")
    report = env.sync("--user", str(local_id), "--user", "JANE.DOE@fabrikam.com")
    changed = {e["entra_id"] for e in report["entries"] if e["action"] == "update"}
    assert changed == {ada, guest}, report["entries"]


def test_a_guest_not_provisioned_yet_is_found_by_its_name_in_the_mirror(env) -> None:
    t = env.tenant
    ada = t.add_user("ada@contoso.onmicrosoft.com", "Ada")
    t.assign(ada)
    guest = t.add_user(GUEST_UPN, "Jane Doe (Fabrikam)", mail="jane.doe@fabrikam.com", user_type="Guest")
    assert env.cli("sync").code == 0  # the mirror knows her, the directory does not (not assigned)
    t.assign(guest)
    report = env.sync("--user", "jane.doe@fabrikam.com")
    assert [(e["action"], e["entra_id"]) for e in report["entries"] if e["object_type"] == "user"] == [("create", guest)]


def test_status_gives_the_hold_as_a_held_cycles_reason_not_the_first_error(env) -> None:
    t = env.tenant
    long_name = t.add_group("Marketing-Communications-EMEA")  # a permanent R9 error, first in the report
    t.assign(long_name)
    ids = [t.add_user(f"user{i}@contoso.onmicrosoft.com") for i in range(4)]
    for uid in ids:
        t.assign(uid)
    env.configure(sync={"deactivation_threshold": 2})
    assert env.cli("sync").code == 3
    for uid in ids[:3]:
        t.unassign(uid)
    report = env.sync(expect=4)
    assert "Marketing-Communications-EMEA" in report["errors"][0]  # (what status must not lead with)
    warnings = env.json("status")["warnings"]
    held = [w for w in warnings if w.startswith("the last cycle held changes back:")]
    assert len(held) == 1, warnings
    assert "exceed sync.deactivation_threshold (2)" in held[0] and "(and 1 other error: `syncd report latest`)" in held[0], held
    assert "Marketing" not in held[0]
    text = env.cli("status").out
    assert "warning: the last cycle held changes back: 3 deactivations exceed" in text
