"""The real CLI against Graph answers as Microsoft documents them (R17, R18): Retry-After
in decimal seconds and as an HTTP date, with SYNCD_TUNING's millisecond backoffs set (the
Retry-After must still win), and stale delta tokens answered as a bare 410 or a 400
resyncRequired. Lower bounds on time only, from the simulator's own log.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest

from syncd.simulator import Fault
from tests.safety.conftest import SafetyEnv
from tests.safety.test_faults import (
    assert_pending_applied,
    pending,  # noqa: F401 (the fixture: a clean cycle, then changes)
    succeeded_cycle,
)

USERS_DELTA = r"/users/delta"
GROUPS_DELTA = r"/groups/delta"


def throttled_and_retry(env: SafetyEnv, path: str):
    log = [e for e in env.sim.exchanges if e.graph and path in e.target]
    for i, exchange in enumerate(log[:-1]):
        if exchange.status == 429:
            return exchange, log[i + 1]
    raise AssertionError(f"no 429 followed by a retry on {path}")


@pytest.mark.usefixtures("pending")
def test_decimal_retry_after_wins_over_the_tuned_backoff(env: SafetyEnv) -> None:
    env.sim.faults.add(Fault(USERS_DELTA, "status", status=429, retry_after=0.6, times=1))
    env.sim.reset_log()
    succeeded_cycle(env)
    throttled, retry = throttled_and_retry(env, "/users/delta")
    assert throttled.headers["Retry-After"] == "0.6"
    assert retry.received >= throttled.sent + 0.6, "retried before Retry-After: 0.6"


@pytest.mark.usefixtures("pending")
def test_http_date_retry_after_is_waited_until(env: SafetyEnv) -> None:
    env.sim.faults.add(Fault(GROUPS_DELTA, "status", status=429, retry_after=2,
                             retry_after_format="date", times=1))
    env.sim.reset_log()
    succeeded_cycle(env)
    throttled, retry = throttled_and_retry(env, "/groups/delta")
    assert retry.received >= parsedate_to_datetime(throttled.headers["Retry-After"]).timestamp()


@pytest.mark.parametrize("style", ["gone_bare", "resyncRequired"])
def test_stale_delta_token_in_other_documented_forms_falls_back_to_a_full_read(
        env: SafetyEnv, request: pytest.FixtureRequest, style: str) -> None:
    ids = request.getfixturevalue("pending")
    env.tenant.expire_delta_tokens(style=style)
    report = env.sync()
    assert report["status"] == "succeeded", report
    assert report["mode"] == "full", report
    assert_pending_applied(env)
    if style == "gone_bare":
        assert any(e.status == 410 and not e.headers.get("Content-Type") for e in env.sim.exchanges)
    env.tenant.update_user(ids["u3"], display_name="Three")
    assert env.cycle().mode == "incremental"
    assert env.local_users()["u3@contoso.onmicrosoft.com"]["display_name"] == "Three"
