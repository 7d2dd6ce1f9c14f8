"""`syncd run` in a subprocess against the simulator: sd_notify, schedule, SIGTERM, SIGHUP,
back-off and the lock shared with one-shot commands (R19)."""

from __future__ import annotations

import signal
import time

from syncd.simulator import Fault

from .conftest import integrity_ok


def _seed(tenant, n: int = 3) -> list[str]:
    ids = []
    for i in range(n):
        uid = tenant.add_user(f"user{i}@contoso.onmicrosoft.com")
        tenant.assign(uid)
        ids.append(uid)
    return ids


def test_ready_watchdog_and_cycles_on_schedule(env, start_daemon):
    _seed(env.tenant)
    d = start_daemon(interval=1.0)
    d.wait_for(lambda: d.notified("READY", "1"), what="READY=1")
    d.wait_for(lambda: len([c for c in env.cycles() if c["status"] == "succeeded"]) >= 3, what="three cycles")
    d.wait_for(lambda: len(d.notified("WATCHDOG", "1")) >= 2, what="watchdog pings")
    # the status line carries the last cycle in one line
    assert any(m.get("STATUS", "").startswith("last cycle ") and "succeeded" in m["STATUS"] for m in d.messages)
    cycles = env.cycles()
    assert {c["trigger"] for c in cycles} == {"schedule"}
    assert cycles[0]["mode"] == "full" and cycles[1]["mode"] == "incremental"
    # the cycles share one msal application: one discovery, one token for all of them
    assert env.sim.token_request_count() == 1
    assert sum(1 for m, target, _ in env.sim.token_requests if m == "GET" and "openid-configuration" in target) == 1
    # status shows the next run while the daemon runs
    st = env.json("status")
    assert st["next_run"] is not None and st["users"]["active"] == 3
    # a change in Entra reaches the directory on the next scheduled cycle
    env.tenant.assign(env.tenant.add_user("late@contoso.onmicrosoft.com"))
    d.wait_for(lambda: env.active_users() == 4, what="the new user to be provisioned")
    assert d.stop() == 0
    assert d.notified("STOPPING", "1")
    assert env.json("status")["next_run"] is None  # the daemon is down: nothing scheduled
    assert integrity_ok(env.store_path)


def test_sigterm_mid_read_stops_cleanly_with_nothing_applied(env, start_daemon):
    _seed(env.tenant, 5)
    fault = env.sim.faults.add(Fault(path=r"/users/delta", kind="slow", delay=30, times=1))
    d = start_daemon(interval=60)
    d.wait_for(lambda: fault.hits == 1, what="the daemon to be mid-read (slow page)")
    time.sleep(0.3)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.stop(timeout=15) == 0
    assert time.monotonic() - t0 < 10, "SIGTERM must not wait for the slow (30 s) read"
    assert d.notified("STOPPING", "1")
    assert integrity_ok(env.store_path)
    # the interrupted cycle applied nothing and says so
    (cycle,) = env.cycles()
    assert cycle["status"] == "failed" and "stopping" in cycle["errors"][0]
    assert env.active_users() == 0
    # a stop is no failure of the service: a routine restart takes no step towards back-off
    from syncd.metrics import consecutive_failures
    from syncd.store.db import Store

    with Store(str(env.store_path)) as store:
        assert consecutive_failures(store) == 0
    # the next cycle converges
    env.sim.faults.clear()
    assert env.cli("sync").code == 0
    assert env.active_users() == 5
    assert integrity_ok(env.store_path)


def test_one_shot_sync_meets_the_daemon_lock(env, start_daemon):
    _seed(env.tenant)
    # long enough for a one-shot `syncd sync` to start up (a few seconds on a loaded machine)
    fault = env.sim.faults.add(Fault(path=r"/users/delta", kind="slow", delay=8, times=1))
    d = start_daemon(interval=600)
    d.wait_for(lambda: fault.hits == 1, what="the daemon's cycle to hold the lock")
    r = env.cli("sync")
    assert r.code == 5, r
    assert f"pid {d.proc.pid} (syncd run)" in r.err and "started" in r.err
    r = env.cli("sync", "--wait", "60")
    assert r.code == 0, r
    cycles = env.cycles()
    assert [c["trigger"] for c in cycles] == ["schedule", "manual"]
    assert d.stop() == 0


def test_sighup_reloads_a_good_config_and_refuses_a_bad_one(env, start_daemon, tmp_path):
    _seed(env.tenant)
    d = start_daemon(interval=1.0)
    d.wait_for(lambda: any(c["status"] == "succeeded" for c in env.cycles()), what="a first cycle")
    # good: the new configuration writes metrics; the next cycle uses it
    prom = tmp_path / "syncd.prom"
    env.configure(metrics={"textfile": str(prom)})
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: prom.exists(), what="metrics from the reloaded configuration")
    assert "reloaded" in d.stderr()
    assert d.notified("RELOADING", "1")
    # bad: an unknown key is refused, the old configuration (and the daemon) carry on
    env.config_path.write_text(env.config_path.read_text() + "\n[sync]\nintervall = 3\n")
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: "refused" in d.stderr(), what="the refusal in the log")
    assert "keeping the running one" in d.stderr()
    n = len(env.cycles())
    prom.unlink()
    d.wait_for(lambda: len(env.cycles()) >= n + 2 and prom.exists(), what="cycles after the refused reload")
    assert d.proc.poll() is None
    assert d.stop() == 0


def test_failed_cycles_back_off_and_a_success_clears_it(env, start_daemon):
    _seed(env.tenant)
    env.tenant.rotate_secret()  # the configured secret is now wrong: every cycle fails fast
    d = start_daemon(interval=0.5)
    d.wait_for(lambda: env.meta("backoff") is not None, what="back-off after repeated failures")
    st = env.json("status")
    assert any("failed in a row: backing off" in w for w in st["warnings"]), st
    assert any("AADSTS7000215" in w for w in st["warnings"]), st
    assert "backing off" in d.stderr()
    # the gaps between failed cycles grow: 0.5 s, 1 s, 2 s ...
    d.wait_for(lambda: len(env.cycles()) >= 3, what="three failed cycles")
    assert {c["status"] for c in env.cycles()} == {"failed"}
    # fix the credential and reload: the next cycle runs at once, succeeds, clears the back-off
    env.configure()
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: env.cycles()[-1]["status"] == "succeeded", timeout=5, what="a successful cycle at once")
    d.wait_for(lambda: env.meta("backoff") is None, what="the back-off to clear")
    assert not any("backing off" in w for w in env.json("status")["warnings"])
    assert d.stop() == 0


def test_bad_config_at_start_exits_2(env, start_daemon):
    env.config_path.write_text(env.config_path.read_text() + "\n[sync]\ninterval_minutes = 0\n")
    d = start_daemon()
    assert d.proc.wait(30) == 2
    assert "sync.interval_minutes" in d.stderr()
    d.poll_notify(0.05)
    assert not d.notified("READY")


def test_the_journal_says_why_a_cycle_did_not_simply_succeed(env, start_daemon):
    """Not `partial: {'skip': 1}`: the reason, in words, as `syncd status` gives it."""
    _seed(env.tenant)
    gid = env.tenant.add_group("A group name far longer than twenty-four characters")
    env.tenant.assign(gid)
    d = start_daemon(interval=60)
    d.wait_for(lambda: env.cycles(), what="the first cycle")
    d.wait_for(lambda: "applied with errors" in d.stderr(), what="the cycle's line in the journal")
    line = next(x for x in d.stderr().splitlines() if "applied with errors" in x)
    assert "A group name far longer than twenty-four characters" in line and "create=3" in line, line
    assert d.stop() == 0
