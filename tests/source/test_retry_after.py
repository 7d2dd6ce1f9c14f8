"""R17: a 429/503 is retried no earlier than its Retry-After, in each form Graph uses:
whole seconds, decimal seconds (Graph's throttling page shows ``Retry-After: 2.128``) and
an HTTP date. Checked from the simulator's own request log (server-side times), with
backoffs tuned to milliseconds (``FAST``) so that only Retry-After can explain the wait.
Lower bounds only: this machine is noisy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from syncd.net import parse_retry_after
from syncd.simulator import Fault, Simulator
from syncd.source import Tuning

from .conftest import FAST

TOKEN = r"/oauth2/v2\.0/token"


def throttled_then_retried(sim: Simulator, path: str, graph: bool = True):
    """The first answer carrying a Retry-After on ``path``, and the request after it."""
    log = [e for e in sim.exchanges if e.graph == graph and path in e.target]
    for i, exchange in enumerate(log[:-1]):
        if "Retry-After" in exchange.headers:
            return exchange, log[i + 1]
    raise AssertionError(f"no throttled answer followed by a retry on {path}: {log}")


def not_before(exchange) -> float:
    """The earliest moment (time.time()) a retry of ``exchange`` may arrive."""
    value = exchange.headers["Retry-After"]
    seconds = parse_retry_after(value)
    assert seconds is not None, value
    if value[0].isdigit():
        return exchange.sent + seconds
    return parsedate_to_datetime(value).timestamp()


@pytest.mark.parametrize("status", [429, 503])
def test_decimal_retry_after_is_waited_in_full(sim, read, status):
    sim.faults.add(Fault("users/delta", "status", status=status, retry_after=0.6, times=1))
    r = read()
    assert len(r.users) == 4
    throttled, retry = throttled_then_retried(sim, "/users/delta")
    assert throttled.headers["Retry-After"] == "0.6" and retry.status == 200
    # FAST backs off 5-50 ms: an early retry is the SDK's parser dropping "0.6"
    assert retry.received >= throttled.sent + 0.6


def test_three_decimal_places_as_graph_writes_them(sim, read):
    sim.faults.add(Fault("groups/delta", "status", status=429, retry_after=0.75,
                         retry_after_format="decimal", times=1))
    read()
    throttled, retry = throttled_then_retried(sim, "/groups/delta")
    assert throttled.headers["Retry-After"] == "0.750"
    assert retry.received >= throttled.sent + 0.75


def test_http_date_retry_after_is_waited_until(sim, read):
    sim.faults.add(Fault("users/delta", "status", status=429, retry_after=2,
                         retry_after_format="date", times=1))
    read()
    throttled, retry = throttled_then_retried(sim, "/users/delta")
    when = parsedate_to_datetime(throttled.headers["Retry-After"])
    assert when.tzinfo is not None and when > datetime.fromtimestamp(throttled.sent, UTC)
    assert retry.received >= when.timestamp()


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_retry_after_left_to_the_outer_retry_loop(sim, read, form):
    # no SDK retries: the 429 reaches syncd's own tenacity loop, which must honour it too
    tuning = Tuning(backoff_initial_s=0.01, backoff_max_s=0.02, throttle_retries=0)
    sim.faults.add(Fault("appRoleAssignedTo", "status", status=429,
                         retry_after=0.6 if form == "seconds" else 2, retry_after_format=form,
                         times=1))
    r = read(tuning=tuning)
    assert r.assignments
    throttled, retry = throttled_then_retried(sim, "appRoleAssignedTo")
    assert retry.received >= not_before(throttled)


@pytest.mark.parametrize("form", ["seconds", "decimal", "date"])
def test_token_endpoint_retry_after_in_every_form(sim, read, form):
    seconds = 2 if form == "date" else 0.6
    sim.faults.add(Fault(TOKEN, "status", status=503, retry_after=seconds,
                         retry_after_format=form, times=1))
    r = read()
    assert r.users
    throttled, retry = throttled_then_retried(sim, "/oauth2/v2.0/token", graph=False)
    assert retry.status == 200
    assert retry.received >= not_before(throttled)


def test_parse_retry_after_forms():
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("2.128") == 2.128
    assert parse_retry_after(" 0.6 ") == 0.6
    assert parse_retry_after("2, 2") == 2.0  # a header sent twice, joined
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:03 GMT", now=now) == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now=now) == 0.0  # past
    for bad in (None, "", "soon", "-1", "2.1.2", "inf"):
        assert parse_retry_after(bad) is None, bad
    assert FAST.backoff(1) < 0.6  # the tests above rely on backoffs shorter than Retry-After
