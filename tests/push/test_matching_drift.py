"""R22 matching, R26 drift repair, request counts, and per-object failures over HTTP."""

from __future__ import annotations

from syncd.store import apps
from tests.push.conftest import Env, assert_in_step
from tests.push.proxy import Fault


def test_existing_objects_are_linked_not_created_again(env: Env) -> None:
    w = env.world
    alice = w.user("alice@contoso.com")
    bob = w.user("bob@contoso.com")
    w.group("Team", alice, bob)
    # the application already has them, under other cases, with other values
    pre_user = env.view.post("Users", {"userName": "ALICE@contoso.com", "displayName": "Old", "active": False})
    pre_group = env.view.post("Groups", {"displayName": "team", "members": [{"value": pre_user["id"]}]})
    out = env.push()
    assert out.status == "succeeded", out.errors
    adopted = {(e["object_type"], e["name"]) for e in out.entries if e["action"] == "adopt"}
    assert adopted == {("user", "ALICE@contoso.com"), ("group", "team")}
    users = env.view.users()
    groups = env.view.groups()
    assert len(users) == 2 and len(groups) == 1
    assert {u["id"] for u in users} >= {pre_user["id"]} and groups[0]["id"] == pre_group["id"]
    assert_in_step(w, env.view)
    assert env.push().requests == 0


def test_many_creates_match_from_one_listing(patch_env: Env) -> None:
    env = patch_env
    w = env.world
    uids = [w.user(f"u{i}@contoso.com") for i in range(30)]
    for i in range(0, 30, 3):
        env.view.post("Users", {"userName": f"u{i}@contoso.com"})
    proxy = env.with_proxy()
    out = env.push()
    assert out.status == "succeeded", out.errors
    filters = [t for m, t, _ in proxy.log if "filter=" in t]
    listings = [t for m, t, _ in proxy.log if m == "GET" and "startIndex=" in t and "/Users" in t]
    assert filters == [] and len(listings) == 1  # 30 names: one listing (a page of 50), not 30 scans
    assert out.counts["adopt"] == 10 and out.counts["create"] == 20
    assert len(env.view.users()) == 30
    assert_in_step(w, env.view)
    assert len(uids) == 30


def test_409_and_404_lead_to_the_look_up(env: Env) -> None:
    w = env.world
    a = w.user("a@contoso.com")
    env.push()
    # deleted there by hand: the next change's 404 leads to a look-up, then a create
    app_id = apps.load(env.store.conn, "split").users[a][0]
    env.view.http.delete(f"Users/{app_id}").raise_for_status()
    w.set(a, display_name="Ay")
    out = env.push()
    assert out.status == "succeeded", out.errors
    assert_in_step(w, env.view)
    assert "create" in out.counts
    # created there between the look-up and the create: the 409 leads to the look-up
    b = w.user("b@contoso.com")
    proxy = env.with_proxy()
    env.view.post("Users", {"userName": "B@contoso.com"})
    # the filter answers "nothing" once (as if read before the other create landed)
    proxy.add(Fault("GET", r"/Users$", "status", status=200, headers={"Content-Type": "application/scim+json"},
                    body=b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[]}'))
    out = env.push()
    assert out.status == "succeeded", out.errors
    assert any(what == 409 for _, _, what in proxy.log)
    assert [u["userName"].lower() for u in env.view.users()].count("b@contoso.com") == 1
    assert apps.load(env.store.conn, "split").users[b][1].lower() == "b@contoso.com"
    assert_in_step(w, env.view)


def test_drift_is_repaired_on_full_reconcile_and_unmanaged_objects_counted(env: Env) -> None:
    w = env.world
    a, b, c = (w.user(f"{n}@contoso.com") for n in "abc")
    team = w.group("Team", a, b)
    env.push()
    stored = apps.load(env.store.conn, "split")
    ids = {u: stored.users[u][0] for u in (a, b, c)}
    gid = stored.groups[team][0]
    stranger = env.view.post("Users", {"userName": "stranger@elsewhere.com", "active": True})
    env.view.post("Groups", {"displayName": "Theirs", "members": [{"value": stranger["id"]}]})
    # changed there by hand
    env.view.edit(f"Users/{ids[a]}", displayName="Hacked")
    env.view.edit(f"Users/{ids[b]}", active=False)
    env.view.edit(f"Groups/{gid}", members=[{"value": ids[b]}, {"value": ids[c]}, {"value": stranger["id"]}])
    # an incremental push does not read the application: nothing to send
    assert env.push().requests == 0
    out = env.push(full_reconcile=True)
    assert out.status == "succeeded", out.errors
    drift = [e for e in out.entries if e["reason"].startswith("drift")]
    assert {(e["action"], e["name"]) for e in drift} == {
        ("update", "a@contoso.com"), ("reactivate", "b@contoso.com"),
        ("add_member", "Team / a@contoso.com"), ("remove_member", "Team / c@contoso.com")}
    assert out.unmanaged == {"users": 1, "groups": 1}
    users, groups = env.view.state()
    assert users["stranger@elsewhere.com"][3] is True and groups["Theirs"] == {"stranger@elsewhere.com"}
    # the stranger stays in Team: syncd does not manage it
    assert groups["Team"] == {"a@contoso.com", "b@contoso.com", "stranger@elsewhere.com"}
    assert_in_step(w, env.view, extra_users={"stranger@elsewhere.com"}, extra_groups={"Theirs"})
    assert env.push(full_reconcile=True).entries == []


def test_hundred_changed_users_cost_at_most_a_request_each_plus_one_per_group(patch_env: Env) -> None:
    env = patch_env
    w = env.world
    uids = [w.user(f"u{i:03}@contoso.com") for i in range(150)]
    groups = [w.group(f"G{k}", *uids[k::5]) for k in range(5)]
    env.push()
    for uid in uids[:100]:
        w.set(uid, display_name=f"Changed {uid}")
    w.members[groups[0]].discard(uids[0])
    w.members[groups[1]].add(uids[0])
    out = env.push()
    assert out.status == "succeeded", out.errors
    assert out.requests <= 100 + 2 + 1  # + ServiceProviderConfig
    assert_in_step(w, env.view)


def test_a_failed_object_is_retried_later_and_then_forgotten(patch_env: Env) -> None:
    env = patch_env
    w = env.world
    a = w.user("a@contoso.com")
    b = w.user("b@contoso.com")
    env.push()
    a_id = apps.load(env.store.conn, "split").users[a][0]
    proxy = env.with_proxy()
    refused = proxy.add(Fault("PATCH", rf"/Users/{a_id}$", "status", status=400, times=-1,
                              headers={"Content-Type": "application/scim+json"},
                              body=b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","detail":"nope"}'))
    w.set(a, display_name="A2")
    w.set(b, display_name="B2")
    out = env.push()  # a fails, b goes on
    assert out.status == "partial" and out.counts == {"failure": 1, "update": 1}
    assert "nope" in next(e["reason"] for e in out.entries if e["status"] == "failure")
    assert apps.pending(env.store.conn, "split") == 1
    assert env.push().counts == {"failure": 1}  # retried at once (the first two retries)
    assert env.push().counts == {"failure": 1}
    out = env.push()  # now it backs off: skipped, no request
    assert out.requests == 0 and out.counts == {"skip": 1} and out.status == "partial"
    assert env.push(full_reconcile=True).counts == {"failure": 1}  # a full reconcile retries it anyway
    proxy.faults.remove(refused)
    out = env.push(full_reconcile=True)
    assert out.status == "succeeded" and out.counts == {"update": 1}
    assert apps.pending(env.store.conn, "split") == 0
    assert_in_step(w, env.view)
