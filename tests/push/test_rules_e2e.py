"""R20-R24 end to end over HTTP against scim2-server (three ServiceProviderConfigs: Bulk, PATCH, PUT)."""

from __future__ import annotations

from syncd.model import ADMIN_GROUP
from syncd.store import apps
from tests.push.conftest import Env, assert_in_step


def _small_world(env: Env) -> dict[str, int]:
    w = env.world
    ids = {n: w.user(f"{n}@contoso.com") for n in ("alice", "bob", "carol", "dave")}
    ids["team"] = w.group("Team", ids["alice"], ids["bob"])
    ids["ops"] = w.group("Ops", ids["carol"])
    w.admins(ids["alice"], ids["dave"])
    return ids


def test_first_push_creates_managed_objects_only_then_nothing_to_send(env: Env) -> None:
    ids = _small_world(env)
    env.world.user("local@contoso.com", managed=False)  # R20: unmanaged local objects are never pushed
    env.world.group("LocalOnly", ids["alice"], managed=False)
    env.world.user("gone@contoso.com", active=False)  # never created while deactivated
    out = env.push()
    assert out.status == "succeeded", out.errors
    assert_in_step(env.world, env.view)
    users, groups = env.view.state()
    assert "local@contoso.com" not in users and "gone@contoso.com" not in users and "LocalOnly" not in groups
    assert users["alice@contoso.com"] == ("alice@contoso.com", "Alice", "alice@contoso.com", True, f"entra-u-{ids['alice']}")
    assert out.counts["create"] == 4 + 3 and out.counts["add_member"] == 5
    assert all(e["target"] == "split" for e in out.entries)
    # R24: a cycle with no change sends no request at all
    again = env.push()
    assert again.requests == 0 and again.entries == [] and again.status == "succeeded"
    assert apps.last_push(env.store.conn, "split")["cycle_id"] == "c2"


def test_changes_are_patched_and_users_never_deleted(env: Env) -> None:
    ids = _small_world(env)
    env.push()
    w = env.world
    w.set(ids["bob"], display_name="Robert", email="robert@contoso.com")
    w.deactivate(ids["carol"])  # leaves Ops too
    w.rename(ids["team"], "Team A")
    w.members[ids["team"]].add(ids["dave"])
    out = env.push()
    assert out.status == "succeeded", out.errors
    assert_in_step(w, env.view)
    actions = {(e["action"], e["name"]) for e in out.entries}
    assert ("update", "bob@contoso.com") in actions and ("deactivate", "carol@contoso.com") in actions
    assert ("update", "Team A") in actions and ("add_member", "Team A / dave@contoso.com") in actions
    assert ("remove_member", "Ops / carol@contoso.com") in actions
    bob = next(e for e in out.entries if e["name"] == "bob@contoso.com")
    assert bob["modified"] == {"display_name": {"old": "Bob", "new": "Robert"},
                               "email": {"old": "bob@contoso.com", "new": "robert@contoso.com"}}
    users, _ = env.view.state()
    assert users["carol@contoso.com"][3] is False  # deactivated, still there
    # reactivation: the same user there, active again, back in its group
    w.set(ids["carol"], status="active")
    w.members[ids["ops"]].add(ids["carol"])
    out = env.push()
    assert ("reactivate", "carol@contoso.com") in {(e["action"], e["name"]) for e in out.entries}
    assert_in_step(w, env.view)
    assert len(env.view.users()) == 4
    assert env.push().requests == 0


def test_group_removed_locally_is_deleted_only_if_syncd_created_or_linked_it(env: Env) -> None:
    ids = _small_world(env)
    foreign = env.view.post("Groups", {"displayName": "Foreign"})
    env.push()
    env.world.remove_group(ids["ops"])
    out = env.push()
    assert ("delete", "Ops") in {(e["action"], e["name"]) for e in out.entries}
    users, groups = env.view.state()
    assert "Ops" not in groups and "Foreign" in groups and "carol@contoso.com" in users
    assert foreign["id"] in {g["id"] for g in env.view.groups()}


def test_administrators_never_deleted_and_never_emptied(env: Env) -> None:
    ids = _small_world(env)
    env.push()
    w = env.world
    # the last active admins go: held back (R12), the rest of the push goes on
    w.deactivate(ids["alice"])
    w.deactivate(ids["dave"])
    w.set(ids["bob"], display_name="Bobby")
    out = env.push()
    assert out.held and out.status == "partial" and any("Administrators" in e for e in out.errors)
    users, groups = env.view.state()
    assert users["bob@contoso.com"][1] == "Bobby"
    assert groups[ADMIN_GROUP] == {"alice@contoso.com", "dave@contoso.com"}
    assert users["alice@contoso.com"][3] and users["dave@contoso.com"][3]
    # a new admin arrives: now the old ones can go
    w.members[1].add(ids["bob"])
    out = env.push()
    assert not out.held, out.errors
    assert_in_step(w, env.view)
    # Administrators stops being managed: forgotten, never deleted
    w.groups[1] = w.groups[1].__class__(1, None, ADMIN_GROUP, False)
    out = env.push()
    assert out.requests == 0
    assert ADMIN_GROUP in env.view.state()[1]


def test_per_application_deactivation_threshold_stages_them(env: Env) -> None:
    w = env.world
    people = [w.user(f"p{i}@contoso.com") for i in range(5)]
    env.push()
    for uid in people[:3]:
        w.deactivate(uid)
    out = env.push(app=env.app(deactivation_threshold=2))
    assert out.held and out.counts.get("staged") == 3 and "deactivate" not in out.counts
    assert all(u[3] for u in env.view.state()[0].values())
    out = env.push(app=env.app(deactivation_threshold=2), approve_deactivations=True)
    assert out.counts["deactivate"] == 3
    assert_in_step(w, env.view)


def test_staged_deactivations_are_held_back(env: Env) -> None:
    w = env.world
    a, b = w.user("a@contoso.com"), w.user("b@contoso.com")
    env.push()
    w.deactivate(a)
    w.deactivate(b)
    out = env.push(staged_deactivation_ids={a})
    assert out.counts == {"deactivate": 1, "staged": 1}
    users, _ = env.view.state()
    assert users["a@contoso.com"][3] is True and users["b@contoso.com"][3] is False


def test_dry_run_lists_every_request_and_sends_no_write(env: Env) -> None:
    ids = _small_world(env)
    out = env.push(dry_run=True)
    assert env.view.users() == [] and env.view.groups() == []
    methods = [(p["method"], p["path"]) for p in out.planned]
    assert methods.count(("POST", "/Users")) == 4 and methods.count(("POST", "/Groups")) == 3
    assert out.counts["create"] == 7
    assert apps.load(env.store.conn, "split").users == {}
    env.push()
    env.world.set(ids["bob"], display_name="B")
    out = env.push(dry_run=True)
    verb = "PUT" if env.server.flavour == "put" else "PATCH"
    assert [(p["method"], p["summary"]) for p in out.planned] == [(verb, ("put " if verb == "PUT" else "replace ") + "displayName")]
    assert env.view.state()[0]["bob@contoso.com"][1] == "Bob"


def test_disabled_application_is_left_alone(env: Env) -> None:
    _small_world(env)
    out = env.push(app=env.app(enabled=False))
    assert out.status == "disabled" and out.requests == 0 and env.view.users() == []


def test_user_names_that_go_round_reach_the_application(env: Env) -> None:
    """R6a applies a chain of renames and a swap locally in one cycle; scim2-server, like
    most applications, refuses a userName another user holds (409): each name must be let
    go of before it is taken (push.diff.name_waves)."""
    w = env.world
    a, b, c = (w.user(f"{n}@contoso.com") for n in ("a", "b", "c"))
    x, y = w.user("x@contoso.com"), w.user("y@contoso.com")
    w.group("Team", a, b, c, x, y)
    assert env.push().status == "succeeded"
    # a chain: c takes d's free name... b takes c's, a takes b's; a swap: x and y trade names
    w.set(c, user_name="d@contoso.com")
    w.set(b, user_name="c@contoso.com")
    w.set(a, user_name="b@contoso.com")
    w.set(x, user_name="y@contoso.com")
    w.set(y, user_name="x@contoso.com")
    out = env.push()
    assert out.status == "succeeded", (out.errors, [e for e in out.entries if e["status"] != "success"])
    assert_in_step(w, env.view)
    assert not any("syncd-parked" in name for name in env.view.state()[0])  # the parked name was let go of
    assert env.push().requests == 0
