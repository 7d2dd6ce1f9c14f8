"""SPEC §7 through the real CLI against django-scim2-server (see conftest.py for how it differs
from scim2-server): ``syncd sync --json`` in a subprocess, the application read back over its
own SCIM API with plain httpx and compared with the local directory."""

from __future__ import annotations

from typing import Any

from tests.push.conftest import PushEnv
from tests.push_second.conftest import DjangoScim, View

D = "contoso.onmicrosoft.com"


def _app(report: dict[str, Any], name: str = "django") -> dict[str, Any]:
    return next(a for a in report["apps"] if a["name"] == name)


def _pushed(report: dict[str, Any], target: str = "django") -> list[dict[str, Any]]:
    return [e for e in report["entries"] if e.get("target") == target]


def _writes(server: DjangoScim) -> list[str]:
    return [line for line in server.requests() if not line.startswith("GET ")]


def assert_in_step(cenv: PushEnv, view: View, *, extra_users: frozenset[str] = frozenset()) -> None:
    """The application holds what the local directory's managed users and groups say (R20, R21)."""
    local_users, local_groups = cenv.users(), cenv.groups()
    users, groups = view.state()
    for name, u in local_users.items():
        if not u["managed"]:
            continue
        there = users.get(name.lower())
        if u["status"] != "active" and there is None:
            continue  # (never created while deactivated)
        assert there is not None, f"{name} missing"
        assert (there["userName"], there["email"], there["active"], there["externalId"]) == (
            u["user_name"], u["email"], u["status"] == "active", u["entra_id"]), name
    assert set(users) - {n.lower() for n in local_users} == set(extra_users)
    want_groups = {name: {m.lower() for m in g["members"] if local_users[m]["managed"] and local_users[m]["status"] == "active"}
                   for name, g in local_groups.items() if g["managed"]}
    assert groups == want_groups


def test_first_push_update_deactivate_rename_and_no_change(cenv: PushEnv, djscim: DjangoScim) -> None:
    t = cenv.tenant
    alice, bob, carol = (t.add_user(f"{n}@{D}") for n in ("alice", "bob", "carol"))
    team, ops = t.add_group("Team"), t.add_group("Ops")
    for gid, uid in ((team, alice), (team, bob), (ops, carol), (ops, bob)):
        t.add_member(gid, uid)
    t.assign(team)
    t.assign(ops)
    cenv.add_app("django", djscim.base_url)
    view = View(djscim.base_url)

    report = cenv.sync()
    assert report["status"] == "succeeded", report["errors"]
    assert _app(report)["status"] == "succeeded"
    assert_in_step(cenv, view)
    writes = _writes(djscim)
    assert sorted(w.split()[1] for w in writes) == ["/scim/v2/Groups"] * 2 + ["/scim/v2/Users"] * 3, writes
    assert not any("/Bulk" in line for line in djscim.requests())  # no Bulk announced: none sent

    # nothing changed: not a single request
    djscim.mark()
    quiet = cenv.sync()
    assert quiet["mode"] == "incremental" and _app(quiet)["requests"] == 0 and _pushed(quiet) == []
    assert djscim.requests() == []

    # an update is one PATCH of what changed (a new UPN: userName and email, R5)
    ids = {k: v["id"] for k, v in view.state()[0].items()}
    djscim.mark()
    t.update_user(alice, upn=f"alice.smith@{D}")
    report = cenv.sync()
    assert report["status"] == "succeeded", report["errors"]
    assert _writes(djscim) == [f"PATCH /scim/v2/Users/{ids[f'alice@{D}']} 200"]
    users = view.state()[0]
    assert users[f"alice.smith@{D}"]["id"] == ids[f"alice@{D}"] and users[f"alice.smith@{D}"]["email"] == f"alice.smith@{D}"
    alice_name = f"alice.smith@{D}"

    # a deactivation sends active=false (never a DELETE) and leaves the groups
    djscim.mark()
    t.disable_user(bob)
    report = cenv.sync()
    assert report["status"] == "succeeded", report["errors"]
    assert ("deactivate", f"bob@{D}") in {(e["action"], e["name"]) for e in _pushed(report)}
    assert not any(w.startswith("DELETE") for w in _writes(djscim))
    users, groups = view.state()
    assert users[f"bob@{D}"]["active"] is False and groups == {"Team": {alice_name}, "Ops": {f"carol@{D}"}}
    assert_in_step(cenv, view)

    # a rename and a member removed: PATCHes of the group
    djscim.mark()
    t.rename_group(team, "Team Blue")
    t.add_member(team, carol)
    t.remove_member(ops, carol)
    t.add_member(ops, alice)
    report = cenv.sync()
    assert report["status"] == "succeeded", report["errors"]
    writes = _writes(djscim)
    assert writes and all(w.startswith("PATCH /scim/v2/Groups/") and w.endswith(" 200") for w in writes), writes
    assert view.state()[1] == {"Team Blue": {alice_name, f"carol@{D}"}, "Ops": {alice_name}}
    assert_in_step(cenv, view)

    # a group no longer assigned (R11): DELETEd there, as syncd created it; its members stay
    djscim.mark()
    ops_id = next(g["id"] for g in view.groups() if g["displayName"] == "Ops")
    t.unassign(ops)
    report = cenv.sync()
    assert report["status"] == "succeeded", report["errors"]
    assert _writes(djscim) == [f"DELETE /scim/v2/Groups/{ops_id} 204"]
    assert set(view.state()[1]) == {"Team Blue"} and view.state()[0][alice_name]["active"] is True
    assert_in_step(cenv, view)
    view.close()


def test_matching_before_create_links_the_existing_user(cenv: PushEnv, djscim: DjangoScim) -> None:
    t = cenv.tenant
    alice = t.add_user(f"alice@{D}")
    team = t.add_group("Team")
    t.add_member(team, alice)
    t.assign(team)
    view = View(djscim.base_url)
    # already there, as an operator created them, in another case (this server keeps userName as sent)
    before = view.post("Users", {"userName": f"Alice@{D}", "active": True, "emails": [{"value": f"alice@{D}", "primary": True}]})
    group = view.post("Groups", {"displayName": "Team"})
    cenv.add_app("django", djscim.base_url)
    djscim.mark()
    report = cenv.sync()
    assert report["status"] == "succeeded", report["errors"]
    adopted = {(e["object_type"], e["name"].lower()) for e in _pushed(report) if e["action"] == "adopt"}
    assert adopted == {("user", f"alice@{D}"), ("group", "team")}, _pushed(report)
    assert not any(w.startswith("POST") for w in _writes(djscim))
    users, groups = view.state()
    assert list(users) == [f"alice@{D}"] and users[f"alice@{D}"]["id"] == before["id"]
    assert users[f"alice@{D}"]["externalId"] == alice  # linked, then brought in step
    assert view.groups()[0]["id"] == group["id"] and groups == {"Team": {f"alice@{D}"}}
    assert_in_step(cenv, view)  # (userName too: brought to the local case)
    view.close()


def test_drift_is_repaired_on_a_full_reconcile_and_only_then(cenv: PushEnv, djscim: DjangoScim) -> None:
    t = cenv.tenant
    alice, bob = t.add_user(f"alice@{D}"), t.add_user(f"bob@{D}")
    team = t.add_group("Team")
    t.add_member(team, alice)
    t.add_member(team, bob)
    t.assign(team)
    cenv.add_app("django", djscim.base_url)
    view = View(djscim.base_url)
    assert cenv.sync()["status"] == "succeeded"
    users, _ = view.state()
    (g,) = view.groups()

    # changed by hand in the application, and one user it has that syncd does not manage
    view.patch(f"Users/{users[f'alice@{D}']['id']}", {"op": "replace", "path": "active", "value": False})
    view.patch(f"Users/{users[f'bob@{D}']['id']}", {"op": "replace", "path": "emails", "value": [{"value": "x@evil.example", "primary": True}]})
    view.patch(f"Groups/{g['id']}", {"op": "replace", "path": "displayName", "value": "Renamed"},
               {"op": "remove", "path": f'members[value eq "{users[f"bob@{D}"]["id"]}"]'})
    view.post("Users", {"userName": "hand.made@example.com", "active": True})

    # an incremental cycle does not read the application: nothing to do, nothing sent
    djscim.mark()
    assert _app(cenv.sync())["requests"] == 0 and djscim.requests() == []

    report = cenv.sync("--full")
    assert report["status"] == "succeeded", report["errors"]
    drift = [e for e in _pushed(report) if "drift" in e["reason"]]
    assert {(e["action"], e["name"]) for e in drift} >= {("reactivate", f"alice@{D}"), ("update", f"bob@{D}"),
                                                         ("update", "Team"), ("add_member", f"Team / bob@{D}")}, drift
    assert _app(report)["unmanaged"] == {"users": 1, "groups": 0}
    assert_in_step(cenv, view, extra_users=frozenset({"hand.made@example.com"}))

    # nothing changed by hand since: a full reconcile reads, and repairs nothing
    djscim.mark()
    report = cenv.sync("--full")
    assert report["status"] == "succeeded", report["errors"]
    assert [e for e in _pushed(report) if "drift" in e["reason"]] == [], _pushed(report)
    assert _writes(djscim) == []
    view.close()


def test_many_users_are_matched_from_a_listing_paged_by_its_max_results(cenv: PushEnv, djscim: DjangoScim) -> None:
    """More names than a filter each (R22 reads the listing once), and more users than the
    application's filter.maxResults (200): pages of 200, in a create and in a full reconcile."""
    t = cenv.tenant
    staff = t.add_group("Staff")
    names = [f"u{i:03}@{D}" for i in range(205)]
    for name in names:
        t.add_member(staff, t.add_user(name))
    t.assign(staff)
    view = View(djscim.base_url)
    for name in names[:3]:
        view.post("Users", {"userName": name.upper(), "active": False})
    cenv.add_app("django", djscim.base_url)
    djscim.mark()
    report = cenv.sync()
    assert report["status"] == "succeeded", report["errors"]
    assert sum(1 for e in _pushed(report) if e["action"] == "adopt") == 3
    lines = djscim.requests()
    assert not any(line.startswith("GET /scim/v2/Users?filter=") for line in lines)  # (the listing, not 205 filters)
    assert sum(line.startswith("POST /scim/v2/Users ") for line in lines) == 202
    users, groups = view.state()
    assert len(users) == 205 and all(u["active"] for u in users.values()) and len(groups["Staff"]) == 205

    djscim.mark()
    report = cenv.sync("--full")
    assert report["status"] == "succeeded", report["errors"]
    assert _pushed(report) == [] and _app(report)["unmanaged"] == {"users": 0, "groups": 0}
    assert _writes(djscim) == []
    pages = [line for line in djscim.requests() if line.startswith("GET /scim/v2/Users?")]
    assert len(pages) == 2 and all("count=200" in p for p in pages), pages
    view.close()
