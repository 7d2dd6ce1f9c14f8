"""A stop of the service reaches a running push: no new request once ``Options.cancel`` is set,
what was confirmed stays recorded, and the next push brings the application in step with no
duplicate."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable

from tests.push.conftest import FAST, Env, assert_in_step
from tests.push.proxy import Fault

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
