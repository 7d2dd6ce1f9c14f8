"""Fault injection through the simulator and the real CLI (R14, R17, R18; SPEC §5).

Every test starts from a directory with one clean cycle behind it and changes pending in
the tenant, then runs a cycle under one fault. A cycle that must fail is checked to have
applied nothing: the store (directory, mirror, delta links, staged deactivations) is
exactly as before, and only its `failed` report was added. A cycle that must succeed is
checked to have applied everything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trustme

from syncd.simulator import Fault
from tests.safety.conftest import D, SafetyEnv, cycle_count, snapshot

USERS_DELTA = r"/users/delta"
GROUPS_DELTA = r"/groups/delta"
ASSIGNMENTS = r"appRoleAssignedTo"
TOKEN = r"/oauth2/v2\.0/token"
ANY_GRAPH = r"^/v1\.0/"


@pytest.fixture
def pending(env: SafetyEnv) -> dict[str, str]:
    """A first clean cycle, then changes in the tenant the next cycle should apply."""
    t = env.tenant
    ids = {f"u{i}": t.add_user(f"u{i}@{D}", display_name=f"User {i}") for i in range(8)}
    team = t.add_group("Team")
    for i in range(6):
        t.add_member(team, ids[f"u{i}"])
    t.assign(team)
    t.assign(ids["u6"])
    t.assign(ids["u7"])
    assert env.cycle().status == "succeeded"
    assert len(env.local_users()) == 8
    # pending: a new user, a disabled one, a rename, a removed member, a changed name
    ids["new"] = t.add_user(f"new@{D}", display_name="New")
    t.add_member(team, ids["new"])
    t.disable_user(ids["u0"])
    t.remove_member(team, ids["u1"])
    t.update_user(ids["u2"], display_name="Renamed Two")
    t.rename_group(team, "Team Renamed")
    ids["team"] = team
    return ids


def assert_pending_applied(env: SafetyEnv) -> None:
    users = env.local_users()
    assert users[f"new@{D}"]["status"] == "active"
    assert users[f"u0@{D}"]["status"] == "deactivated"
    assert users[f"u1@{D}"]["status"] == "deactivated"  # no longer in scope
    assert users[f"u2@{D}"]["display_name"] == "Renamed Two"
    groups = env.local_groups()
    assert "Team" not in groups
    assert groups["Team Renamed"]["members"] == sorted(f"{n}@{D}" for n in ("u2", "u3", "u4", "u5", "new"))


def failed_cycle(env: SafetyEnv, *args: str, full: bool = True) -> dict[str, Any]:
    """Run a cycle that must fail; check that it applied nothing and left its report."""
    before, cycles = snapshot(env.store_path), cycle_count(env.store_path)
    report = env.sync(*(("--full",) if full else ()), *args, expect=1)
    assert report["status"] == "failed", report
    assert report["entries"] == [] and report["counts"] == {}, report
    assert report["errors"] and report["errors"][0].startswith("nothing applied"), report["errors"]
    assert snapshot(env.store_path) == before, "a failed cycle changed the store"
    assert cycle_count(env.store_path) == cycles + 1, "the failed cycle's report is missing"
    return report


def recovers(env: SafetyEnv) -> Any:
    """With the fault gone the next cycle applies everything that was pending."""
    env.sim.faults.clear()
    report = env.cycle()
    assert report.status == "succeeded", report.errors
    assert_pending_applied(env)
    return report


def succeeded_cycle(env: SafetyEnv, *args: str, full: bool = True) -> dict[str, Any]:
    report = env.sync(*(("--full",) if full else ()), *args)
    assert report["status"] == "succeeded", report
    assert_pending_applied(env)
    return report


# --------------------------------------------------------------------------- R17 throttling


def test_429_storm_that_ends_honours_retry_after_and_succeeds(env: SafetyEnv, pending) -> None:
    fault = env.sim.faults.add(Fault(USERS_DELTA, "status", status=429, retry_after=1, times=3))
    report = succeeded_cycle(env)
    assert fault.hits == 3
    assert report["throttled"] >= 3
    assert env.last_seconds >= 3.0, f"Retry-After: 1 three times, but the cycle took {env.last_seconds:.2f}s"


def test_429_storm_past_the_cycle_budget_fails_and_applies_nothing(env: SafetyEnv, pending) -> None:
    env.configure(sync={"cycle_timeout_minutes": 0.05})  # 3 s
    env.sim.faults.add(Fault(USERS_DELTA, "status", status=429, retry_after=1, times=-1))
    report = failed_cycle(env)
    assert env.last_seconds < 20, f"the budget is 3 s but the cycle took {env.last_seconds:.1f}s"
    assert re.search(r"429|throttl", " ".join(report["errors"]), re.I), report["errors"]
    recovers(env)


def test_429_with_a_retry_after_longer_than_the_budget_fails_at_once(env: SafetyEnv, pending) -> None:
    env.configure(sync={"cycle_timeout_minutes": 0.05})
    env.sim.faults.add(Fault(USERS_DELTA, "status", status=429, retry_after=600, times=-1))
    failed_cycle(env)
    assert env.last_seconds < 15, "a Retry-After the budget cannot afford must not be slept"
    recovers(env)


@pytest.mark.parametrize("status", [503, 504])
def test_5xx_throttle_with_retry_after_is_retried(env: SafetyEnv, pending, status: int) -> None:
    fault = env.sim.faults.add(Fault(GROUPS_DELTA, "status", status=status, retry_after=1, times=2))
    succeeded_cycle(env)
    assert fault.hits == 2
    assert env.last_seconds >= 2.0


@pytest.mark.parametrize("status", [429, 503, 504])
def test_throttling_without_retry_after_backs_off_and_succeeds(env: SafetyEnv, pending, status: int) -> None:
    # retry_after < 0: the simulator leaves the header out, even on 429 and 503
    fault = env.sim.faults.add(Fault(USERS_DELTA, "status", status=status, retry_after=-1, times=2))
    succeeded_cycle(env)
    assert fault.hits == 2


@pytest.mark.parametrize("status", [500, 502])
def test_transient_5xx_backs_off_and_succeeds(env: SafetyEnv, pending, status: int) -> None:
    fault = env.sim.faults.add(Fault(ASSIGNMENTS, "status", status=status, times=2))
    succeeded_cycle(env)
    assert fault.hits == 2


@pytest.mark.parametrize("status", [503, 504, 500])
def test_persistent_5xx_fails_and_applies_nothing(env: SafetyEnv, pending, status: int) -> None:
    env.configure(sync={"cycle_timeout_minutes": 0.1})
    env.sim.faults.add(Fault(USERS_DELTA, "status", status=status, retry_after=1 if status != 500 else None, times=-1))
    report = failed_cycle(env)
    assert str(status) in " ".join(report["errors"]), report["errors"]
    recovers(env)


def test_403_is_not_retried_and_names_the_permission(env: SafetyEnv, pending) -> None:
    fault = env.sim.faults.add(Fault(GROUPS_DELTA, "status", status=403, times=-1))
    report = failed_cycle(env)
    assert fault.hits == 1, "a 403 is not transient"
    assert "GroupMember.Read.All" in " ".join(report["errors"]) or "Group" in " ".join(report["errors"])
    recovers(env)


# --------------------------------------------------------------------------- the network


def test_connection_resets_are_retried(env: SafetyEnv, pending) -> None:
    fault = env.sim.faults.add(Fault(USERS_DELTA, "reset", times=2, after=1))
    succeeded_cycle(env)
    assert fault.hits == 2


def test_connection_reset_on_every_try_fails_and_applies_nothing(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(USERS_DELTA, "reset", times=-1, after=1))
    report = failed_cycle(env)
    assert "reset" in " ".join(report["errors"]).lower(), report["errors"]
    recovers(env)


def test_tls_failure_with_a_wrong_ca_bundle_exits_1_naming_ca_bundle(env: SafetyEnv, pending, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    env.configure(entra={"ca_bundle": str(other_ca)})
    before = snapshot(env.store_path)
    report = env.sync(expect=1)
    assert report["status"] == "failed"
    assert "ca_bundle" in " ".join(report["errors"]), report["errors"]
    assert "ca_bundle" in env.last_result.err, env.last_result.err
    assert snapshot(env.store_path) == before
    env.configure()
    recovers(env)


def test_slow_answers_past_the_cycle_timeout_fail_within_the_budget(env: SafetyEnv, pending) -> None:
    env.configure(sync={"cycle_timeout_minutes": 0.05})  # 3 s
    env.sim.faults.add(Fault(USERS_DELTA, "slow", delay=30, times=-1, after=1))
    report = failed_cycle(env)
    # (the process start and msgraph's import come on top of the 3 s)
    assert env.last_seconds < 15, f"a 3 s budget, but the cycle ran {env.last_seconds:.1f}s (it waited for the slow page)"
    assert re.search(r"time|budget", " ".join(report["errors"]), re.I), report["errors"]
    recovers(env)


def test_a_slow_answer_within_the_budget_is_fine(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(USERS_DELTA, "slow", delay=0.5, times=1, after=1))
    succeeded_cycle(env)


# --------------------------------------------------------------------------- bad pages (R14)


def test_truncated_body_every_time_fails_and_applies_nothing(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(USERS_DELTA, "truncated", times=-1, after=1))
    failed_cycle(env)
    recovers(env)


def test_truncated_body_once_is_never_half_applied(env: SafetyEnv, pending) -> None:
    # a cut-off answer is a broken connection: retried, or the cycle fails; never partial
    before = snapshot(env.store_path)
    env.sim.faults.add(Fault(USERS_DELTA, "truncated", times=1, after=1))
    report = env.sync("--full", expect=None)
    if report["status"] == "failed":
        assert env.last_result.code == 1 and snapshot(env.store_path) == before
        recovers(env)
    else:
        assert report["status"] == "succeeded", report
        assert_pending_applied(env)


def test_invalid_json_fails_and_applies_nothing(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(USERS_DELTA, "invalid_json", times=-1, after=1))
    report = failed_cycle(env)
    assert re.search(r"malformed|JSON", " ".join(report["errors"]), re.I), report["errors"]
    recovers(env)


def test_invalid_json_on_the_assignments_fails(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(ASSIGNMENTS, "invalid_json", times=-1))
    failed_cycle(env)
    recovers(env)


def test_missing_next_link_is_a_missing_page_and_fails(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(USERS_DELTA, "drop_nextlink", times=1))
    failed_cycle(env)
    recovers(env)


def test_missing_next_link_on_group_members_fails(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(GROUPS_DELTA, "drop_nextlink", times=1))
    failed_cycle(env)
    recovers(env)


def test_looping_next_link_fails_instead_of_reading_forever(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(USERS_DELTA, "loop_nextlink", times=-1, after=1))
    report = failed_cycle(env)
    assert env.last_seconds < 30
    assert re.search(r"loop|again|repeat|same", " ".join(report["errors"]), re.I), report["errors"]
    recovers(env)


@pytest.mark.parametrize("variant", ["bad_id", "missing_id"])
def test_malformed_item_fails_the_whole_read(env: SafetyEnv, pending, variant: str) -> None:
    env.sim.faults.add(Fault(USERS_DELTA, "malformed_item", times=1, after=1, variant=variant))
    failed_cycle(env)
    recovers(env)


def test_faults_during_an_incremental_read_apply_nothing_and_keep_the_delta_links(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(GROUPS_DELTA, "status", status=500, times=-1))
    failed_cycle(env, full=False)  # the snapshot includes meta.delta_links
    report = recovers(env)
    assert report.mode == "incremental"


# --------------------------------------------------------------------------- R18 delta expiry


@pytest.mark.parametrize("style", ["gone", "syncStateNotFound"])
def test_expired_delta_token_falls_back_to_a_full_read_by_itself(env: SafetyEnv, pending, style: str) -> None:
    env.tenant.expire_delta_tokens(style=style)
    report = env.sync()
    assert report["status"] == "succeeded", report
    assert report["mode"] == "full", report
    assert_pending_applied(env)
    # and the cycle after it is incremental again, from fresh links
    env.tenant.update_user(pending["u3"], display_name="Three")
    report = env.cycle()
    assert report.mode == "incremental"
    assert env.local_users()[f"u3@{D}"]["display_name"] == "Three"


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize("status", [429, 500, 503])
def test_token_endpoint_transient_errors_are_retried(env: SafetyEnv, pending, status: int) -> None:
    fault = env.sim.faults.add(Fault(TOKEN, "status", status=status, retry_after=1 if status != 500 else None, times=2))
    succeeded_cycle(env)
    assert fault.hits == 2


@pytest.mark.parametrize("status", [429, 503])
def test_token_endpoint_down_fails_and_applies_nothing(env: SafetyEnv, pending, status: int) -> None:
    env.configure(sync={"cycle_timeout_minutes": 0.05})
    env.sim.faults.add(Fault(TOKEN, "status", status=status, retry_after=1, times=-1))
    report = failed_cycle(env)
    assert "token" in " ".join(report["errors"]).lower()
    recovers(env)


def test_a_token_still_awaited_when_the_budget_ends_is_named(env: SafetyEnv, pending) -> None:
    # the token request hangs past the cycle budget: the failure names the token endpoint,
    # not "the read from Graph" (no Graph request was ever sent)
    env.configure(sync={"cycle_timeout_minutes": 0.05})
    env.sim.faults.add(Fault(TOKEN, "slow", delay=6, times=1))
    report = failed_cycle(env)
    assert report["graph_requests"] == 0, report
    errors = " ".join(report["errors"])
    assert "no access token from the token endpoint" in errors and "cycle budget of 3 s" in errors, errors
    recovers(env)


def test_token_endpoint_reset_is_retried(env: SafetyEnv, pending) -> None:
    fault = env.sim.faults.add(Fault(TOKEN, "reset", times=1))
    succeeded_cycle(env)
    assert fault.hits == 1


def test_invalid_client_fails_with_the_fix_and_is_not_retried(env: SafetyEnv, pending) -> None:
    secret_file = Path(env.sim.write_secret_file())
    env.tenant.rotate_secret()  # the configured secret is now wrong
    env.sim.reset_log()
    report = failed_cycle(env)
    text = " ".join(report["errors"])
    assert "AADSTS7000215" in text and "client_secret_file" in text, text
    assert env.sim.token_request_count() == 1, "a refused credential must not be retried"
    assert env.tenant.client_secret not in env.last_result.out + env.last_result.err
    secret_file.write_text(env.tenant.client_secret)
    recovers(env)


def test_401_mid_cycle_gets_one_fresh_token_and_succeeds(env: SafetyEnv, pending) -> None:
    sim = env.sim
    handle = sim.graph.handle
    state = {"calls": 0}

    def revoke_after_first_page(method, path, *args, **kwargs):
        result = handle(method, path, *args, **kwargs)
        state["calls"] += 1
        if state["calls"] == 1:
            sim.revoke_tokens()  # every token issued so far now gets 401
        return result

    sim.graph.handle = revoke_after_first_page  # type: ignore[method-assign]
    sim.reset_log()
    report = succeeded_cycle(env)
    assert sim.token_request_count() == 2, "one token at the start, exactly one fresh one after the 401"
    assert sum(1 for _, _, status in sim.requests if status == 401) >= 1
    assert report["status"] == "succeeded"


def test_401_that_persists_after_a_fresh_token_fails(env: SafetyEnv, pending) -> None:
    env.sim.faults.add(Fault(USERS_DELTA, "status", status=401, times=-1))
    env.sim.reset_log()
    failed_cycle(env)
    assert env.sim.token_request_count() <= 2, "one fresh token, not a loop of them"
    recovers(env)


def test_a_failed_cycle_reports_the_requests_it_sent_and_the_throttling_it_met(env: SafetyEnv, pending) -> None:
    env.configure(sync={"cycle_timeout_minutes": 0.05})  # 3 s
    env.sim.faults.add(Fault(USERS_DELTA, "status", status=429, retry_after=1, times=-1))
    env.sim.reset_log()
    report = failed_cycle(env)
    assert report["throttled"] >= 2, report
    assert report["graph_requests"] >= report["throttled"], report
    # what the simulator saw (one request may be cut off in flight by the budget)
    assert abs(report["graph_requests"] - env.sim.graph_request_count()) <= 1, report
    recovers(env)
