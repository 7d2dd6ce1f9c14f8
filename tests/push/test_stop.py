"""A stop of the service reaches a running push: no new request once ``Options.cancel`` is set,
what was confirmed stays recorded, and the next push brings the application in step with no
duplicate. Through the engine, then through the real daemon (`syncd run`) and SIGTERM."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.push.conftest import FAST, TOKEN, AppView, Env, ScimServer, assert_in_step
from tests.push.proxy import Fault, FaultProxy
from tests.push.test_cycle_e2e import D, PushEnv

INTERRUPTED = re.compile(r"^split: the service is stopping: the push was interrupted after (\d+) request\(s\)$")


def _stop_when(predicate: Callable[[], bool], cancel: threading.Event, seen: dict[str, int],
               count: Callable[[], int]) -> threading.Thread:
    """Sets ``cancel`` once ``predicate`` holds (``seen["at_cancel"]``: ``count()`` just before)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.005)
        seen["at_cancel"] = count()
        cancel.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _app_users(env: Env) -> int:
    return int(env.store.conn.execute("SELECT count(*) FROM app_users WHERE app = 'split'").fetchone()[0])


def test_a_stop_mid_push_sends_no_new_request_and_the_next_push_completes(patch_env: Env) -> None:
    env = patch_env
    uids = [env.world.user(f"u{i:03}@contoso.com") for i in range(60)]
    env.world.group("Team", *uids[:30])
    proxy = env.with_proxy()
    slow = proxy.add(Fault("POST", r"/Users$", "delay", delay_s=0.2, times=-1))  # a long push: 15 rounds of 4
    cancel = threading.Event()
    seen: dict[str, int] = {}
    watcher = _stop_when(lambda: slow.hits >= 8, cancel, seen, lambda: slow.hits)
    out = env.push(options=dataclasses.replace(FAST, cancel=cancel))
    watcher.join()

    assert out.interrupted and out.status == "partial", (out.status, out.errors)
    (error,) = out.errors
    match = INTERRUPTED.match(error)
    assert match and int(match.group(1)) == out.requests, error
    # no new request after the stop: at most the 4 workers' requests already under way
    assert seen["at_cancel"] <= slow.hits <= seen["at_cancel"] + 4, (seen, slow.hits)
    assert slow.hits < 60 and not any(m == "POST" and "/Groups" in t for m, t, _ in proxy.log)
    # the requests in flight finished and were recorded: the store knows every user created
    created = len(env.view.users())
    assert 0 < created < 60 and _app_users(env) == created
    assert all(e["status"] == "success" for e in out.entries)

    # the next push sends the rest: no duplicate (AppView.state asserts it), nothing missing
    proxy.clear()
    again = env.push()
    assert again.status == "succeeded" and not again.interrupted, again.errors
    assert_in_step(env.world, env.view)
    assert len(env.view.users()) == 60 and _app_users(env) == 60
    assert env.push().requests == 0  # in step: nothing more to send


def test_a_stop_ends_a_retry_after_wait_at_once(patch_env: Env) -> None:
    env = patch_env
    env.world.user("alice@contoso.com")
    proxy = env.with_proxy()
    throttled = proxy.add(Fault("POST", r"/Users$", "status", status=429, headers={"Retry-After": "120"}, times=-1))
    cancel = threading.Event()
    _stop_when(lambda: throttled.hits >= 1, cancel, {}, lambda: throttled.hits)
    t0 = time.monotonic()
    # (a budget that lets the push wait as asked: without the stop it would wait 120 s)
    out = env.push(options=dataclasses.replace(FAST, cancel=cancel, budget_s=600))
    assert time.monotonic() - t0 < 60, "the push waited out Retry-After after the stop"  # (a generous bound)
    assert out.interrupted and throttled.hits == 1 and env.view.users() == []
    assert out.status == "partial" and INTERRUPTED.match(out.errors[0]), out.errors
    proxy.clear()
    assert env.push().status == "succeeded"
    assert_in_step(env.world, env.view)


def test_a_stop_before_the_push_sends_nothing(patch_env: Env) -> None:
    env = patch_env
    env.world.user("alice@contoso.com")
    proxy = env.with_proxy()
    cancel = threading.Event()
    cancel.set()
    out = env.push(options=dataclasses.replace(FAST, cancel=cancel))
    assert out.status == "failed" and out.interrupted and out.requests == 0 and proxy.log == []
    assert out.errors == ["split: the service is stopping: the push was interrupted after 0 request(s)"]


# --------------------------------------------------------------------------- the daemon


@pytest.fixture
def penv(tmp_path: Path) -> Iterator[PushEnv]:
    yield from PushEnv.running(tmp_path)


def _daemon(penv: PushEnv, log: Path) -> subprocess.Popen[bytes]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "WATCHDOG_", "NOTIFY_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "syncd", "run", "--config", str(penv.config_path), "--interval-seconds", "600"],
        env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )


def _cycles(store: Path) -> list[tuple[str, int, dict]]:
    with sqlite3.connect(store) as c:
        rows = c.execute("SELECT status, interrupted, document FROM cycles ORDER BY seq").fetchall()
    return [(status, interrupted, json.loads(doc)) for status, interrupted, doc in rows]


def test_sigterm_during_a_slow_push_stops_the_daemon_and_the_next_cycle_completes(
    penv: PushEnv, servers: dict[str, ScimServer], tmp_path: Path,
) -> None:
    t = penv.tenant
    users = [t.add_user(f"user{i:02}@{D}") for i in range(40)]
    team = t.add_group("Team")
    for uid in users:
        t.add_member(team, uid)
    t.assign(team)
    server = servers["patch"]
    base, other_base = server.tenant(), servers["bulk"].tenant()
    proxy = FaultProxy(f"http://127.0.0.1:{server.port}")
    try:
        _stop_and_converge(penv, server, proxy, base, other_base, users, tmp_path)
    finally:
        proxy.close()


def _stop_and_converge(penv: PushEnv, server: ScimServer, proxy: FaultProxy, base: str, other_base: str,
                       users: list[str], tmp_path: Path) -> None:
    # one create at a time, half a second each: the push would take 20 s; the grace is 60 s
    slow = proxy.add(Fault("POST", r"/Users$", "delay", delay_s=0.5, times=-1))
    penv.add_app("split", proxy.url(base.split(f":{server.port}", 1)[1]), concurrency=1)
    penv.add_app("other", other_base)
    view, other = AppView(base), AppView(other_base)
    log = tmp_path / "daemon.log"
    proc = _daemon(penv, log)
    try:
        deadline = time.monotonic() + 60
        while slow.hits < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert slow.hits >= 3, log.read_text()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
        err = log.read_text()
        # it stopped within its grace (past it, it exits 1 and says so) and before the push's end
        assert code == 0 and "did not end within" not in err, err
        assert slow.hits < len(users), "the push ran to its end after SIGTERM"
        assert TOKEN not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    ((status, interrupted, doc),) = _cycles(penv.store_path)
    assert status == "partial" and interrupted == 1, doc["errors"]
    apps = {a["name"]: a for a in doc["apps"]}
    assert apps["split"]["status"] == "partial" and apps["split"]["interrupted"] is True
    assert apps["other"] == {"name": "other", "status": "failed", "requests": 0, "throttled": 0, "counts": {},
                             "interrupted": True}
    assert any(INTERRUPTED.match(e) for e in doc["errors"]), doc["errors"]
    assert "other: the service is stopping: the push was not started" in doc["errors"]
    assert len(penv.users()) == len(users)  # the local directory committed before the push
    assert 0 < len(view.users()) < len(users) and other.users() == []
    from syncd.metrics import consecutive_failures
    from syncd.store.db import Store

    with Store(str(penv.store_path)) as store:
        assert consecutive_failures(store) == 0

    # the next cycle sends the rest: both applications exactly in step, no duplicate
    proxy.clear()
    report = penv.sync()
    assert report["status"] == "succeeded", report["errors"]
    for app in (view, other):
        got_users, got_groups = app.state()  # (duplicates fail inside)
        assert set(got_users) == {f"user{i:02}@{D}" for i in range(40)}
        assert all(u[3] is True for u in got_users.values())
        assert got_groups == {"Team": set(got_users)}
    quiet = penv.sync()
    assert [a["requests"] for a in quiet["apps"]] == [0, 0]
    view.http.close()
    other.http.close()
