"""R25 over a fault-injecting proxy in front of scim2-server: Retry-After, 5xx, resets,
timeouts, 409, 401, and a create whose answer is lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import formatdate

import pytest

from syncd.net import parse_retry_after
from syncd.store import apps
from tests.push.conftest import TOKEN, Env, assert_in_step
from tests.push.proxy import Fault


def _world(env: Env, n: int = 6) -> list[int]:
    w = env.world
    uids = [w.user(f"u{i}@contoso.com") for i in range(n)]
    w.group("Team", *uids[: n // 2])
    return uids


def retry_after(value: str | None, now: float | None = None) -> float | None:
    return parse_retry_after(value, None if now is None else datetime.fromtimestamp(now, UTC))


def test_retry_after_forms() -> None:
    assert retry_after("3") == 3.0 and retry_after("0.25") == 0.25
    now = time.time()
    assert 9 <= retry_after(formatdate(now + 10, usegmt=True), now=now) <= 11
    assert retry_after(formatdate(now - 10, usegmt=True), now=now) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


@pytest.mark.parametrize("after", ["0.3", "1"])
def test_429_and_503_wait_for_retry_after(patch_env: Env, after: str) -> None:
    env = patch_env
    _world(env)
    proxy = env.with_proxy()
    proxy.add(Fault("POST", r"/Users$", "status", status=429, headers={"Retry-After": after}, times=1))
    proxy.add(Fault("GET", r"/ServiceProviderConfig$", "status", status=503, headers={"Retry-After": after}, times=1))
    t0 = time.monotonic()
    out = env.push(app=env.app(concurrency=1))
    assert out.status == "succeeded", out.errors
    assert time.monotonic() - t0 >= 2 * float(after) * 0.9  # (a lower bound only: waited as asked)
    assert out.throttled == 2
    assert_in_step(env.world, env.view)


def test_5xx_resets_and_timeouts_back_off_and_succeed(env: Env) -> None:
    uids = _world(env)
    env.push()
    for uid in uids:
        env.world.set(uid, display_name=f"New {uid}")
    proxy = env.with_proxy()
    verb = "PUT" if env.server.flavour == "put" else ("POST" if env.server.flavour == "bulk" else "PATCH")
    proxy.add(Fault(verb, r"/(Users|Bulk)", "status", status=500, times=1))
    proxy.add(Fault(verb, r"/(Users|Bulk)", "reset", times=1))
    proxy.add(Fault(verb, r"/(Users|Bulk)", "stall", stall_s=4.0, times=1))  # past the 3 s read timeout
    proxy.add(Fault("GET", r"/ServiceProviderConfig$", "status", status=502, times=1))
    out = env.push(app=env.app(concurrency=1))
    assert out.status == "succeeded", out.errors
    assert {"reset", "stall", 500, 502} <= {what for _, _, what in proxy.log}
    assert_in_step(env.world, env.view)


def test_a_lost_answer_to_a_create_leaves_no_duplicate(env: Env) -> None:
    _world(env)
    proxy = env.with_proxy()
    path = r"/Bulk$" if env.server.flavour == "bulk" else r"/Groups$"
    proxy.add(Fault("POST", path, "lose_answer", times=1))
    proxy.add(Fault("POST", r"/Users$", "lose_answer", times=1))
    out = env.push()
    assert any(str(what).startswith("lost") for _, _, what in proxy.log)
    assert out.status in ("succeeded", "partial")
    env.push()
    assert_in_step(env.world, env.view)  # (duplicates fail inside)
    assert len(env.view.groups()) == 1 and len(env.view.users()) == 6


def test_409_on_create_links_the_existing_user(patch_env: Env) -> None:
    env = patch_env
    _world(env, 2)
    proxy = env.with_proxy()
    # someone else creates the user between syncd's look-up and its create
    existing = env.view.post("Users", {"userName": "U1@contoso.com"})
    proxy.add(Fault("GET", r"/Users$", "status", status=200, times=-1, headers={"Content-Type": "application/scim+json"},
                    body=b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[]}'))
    out = env.push()
    assert any(m == "POST" and what == 409 for m, _, what in proxy.log)
    assert out.status == "partial"  # the look-up the fault blanks cannot find it this time ...
    proxy.clear()
    out = env.push()  # ... the next push does, and links it
    assert out.status == "succeeded", out.errors
    assert existing["id"] in {u["id"] for u in env.view.users()} and len(env.view.users()) == 2
    assert_in_step(env.world, env.view)


def test_401_stops_that_application_only_with_the_fix(env: Env, tmp_path) -> None:
    _world(env)
    out = env.push(app=env.app(token="wrong-token"))
    assert out.status == "failed" and out.auth_refused
    (error,) = out.errors
    assert "split" in error and "new token" in error and str(env.token_file) in error
    assert "wrong-token" not in error and env.view.users() == []
    # the other application goes on
    other = env.push(app=env.app(name="other"))
    assert other.status == "succeeded"
    assert apps.last_push(env.store.conn, "split")["status"] == "failed"


def test_403_midway_stops_and_keeps_what_was_done(patch_env: Env) -> None:
    env = patch_env
    _world(env)
    proxy = env.with_proxy()
    proxy.add(Fault("POST", r"/Groups$", "status", status=403, times=-1))
    out = env.push()
    assert out.auth_refused and out.status == "failed"
    assert len(apps.load(env.store.conn, "split").users) == 6  # the users' outcomes were recorded
    proxy.clear()
    out = env.push()
    assert out.status == "succeeded" and out.counts.get("create") == 1
    assert_in_step(env.world, env.view)


def test_the_token_is_never_in_outcomes_store_or_logs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    _world(env)
    proxy = env.with_proxy()
    proxy.add(Fault("POST", r"/(Users|Bulk)$", "status", status=500, times=2))
    outs = [env.push(), env.push(full_reconcile=True), env.push(app=env.app(token=TOKEN + "x")), env.push(dry_run=True)]
    env.store.conn.execute("PRAGMA wal_checkpoint(FULL)")
    blobs = [repr(o).encode() for o in outs] + [caplog.text.encode()]
    blobs += [p.read_bytes() for p in env.tmp.glob("syncd.db*")]
    for blob in blobs:
        assert TOKEN.encode() not in blob and TOKEN[8:28].encode() not in blob


def _swap(env: Env) -> tuple[int, int]:
    w = env.world
    x, y = w.user("x@contoso.com"), w.user("y@contoso.com")
    assert env.push().status == "succeeded"
    w.set(x, user_name="y@contoso.com")
    w.set(y, user_name="x@contoso.com")
    return x, y


def test_a_swap_whose_parked_user_was_deleted_by_hand_is_created_again_not_a_crash(patch_env: Env) -> None:
    env = patch_env
    _swap(env)
    users = {u["userName"]: u["id"] for u in env.view.users()}
    env.view.http.delete(f"Users/{users['x@contoso.com']}").raise_for_status()  # the park: 404
    out = env.push()
    assert out.status == "succeeded", (out.errors, [(e["name"], e["status"], e["reason"]) for e in out.entries])
    assert_in_step(env.world, env.view)
    assert env.push().requests == 0


def test_a_parked_user_takes_its_old_name_back_when_the_swap_fails(patch_env: Env) -> None:
    env = patch_env
    _swap(env)
    proxy = env.with_proxy()
    proxy.add(Fault("PATCH", r"/Users/", "delay", delay_s=0.0, times=1))  # the park goes through,
    proxy.add(Fault("PATCH", r"/Users/", "status", status=400, times=2))  # the two renames do not
    out = env.push()
    assert out.status == "partial"
    names = set(env.view.state()[0])
    assert names == {"x@contoso.com", "y@contoso.com"}, names  # no one left under a parked name
    proxy.clear()
    assert env.push().status == "succeeded"
    assert_in_step(env.world, env.view)
