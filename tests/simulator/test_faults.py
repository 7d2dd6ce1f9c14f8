"""Every fault kind, seen by a plain HTTPS client."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest

from syncd.simulator import Fault

from .conftest import DOMAIN, fetch_token

USERS = "/v1.0/users/delta"


@pytest.fixture
def many_users(simulator):
    for i in range(7):
        simulator.tenant.add_user(f"u{i}@{DOMAIN}")
    return simulator


def test_status_with_retry_after_then_recovers(simulator, graph):
    simulator.faults.add(Fault(r"/users/delta", "status", status=429, retry_after=2))
    r = graph.get(USERS)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.json()["error"]["code"] == "TooManyRequests"
    assert graph.get(USERS).status_code == 200
    assert simulator.faults.hits["status"] == 1
    assert simulator.requests[-2:] == [("GET", USERS, 429), ("GET", USERS, 200)]


def test_503_gets_a_default_retry_after_and_times_after(simulator, graph):
    fault = simulator.faults.add(Fault(r"/users$", "status", status=503, times=2, after=1))
    codes = [graph.get("/v1.0/users").status_code for _ in range(4)]
    assert codes == [200, 503, 503, 200]
    assert fault.hits == 2 and fault.seen == 3 and fault.exhausted  # seen stops once exhausted
    simulator.faults.clear()
    simulator.faults.add(Fault(r"/users$", "status", status=503))
    assert graph.get("/v1.0/users").headers["Retry-After"] == "1"


def test_always(simulator, graph):
    simulator.faults.add(Fault(r"/users", "status", status=500, times=-1))
    assert {graph.get("/v1.0/users").status_code for _ in range(3)} == {500}
    assert simulator.faults.total_hits == 3


def test_token_endpoint_faults(simulator):
    simulator.faults.add(Fault(r"/oauth2/v2.0/token", "status", status=503, retry_after=0.5))
    r = fetch_token(simulator)
    assert r.status_code == 503 and r.headers["Retry-After"] == "0.5"
    assert r.json()["error"] == "temporarily_unavailable"
    assert fetch_token(simulator).status_code == 200


def test_reset(simulator, graph):
    simulator.faults.add(Fault(r"/users", "reset"))
    with pytest.raises(httpx.TransportError):
        graph.get("/v1.0/users")
    assert graph.get("/v1.0/users").status_code == 200  # a new connection works
    assert ("GET", "/v1.0/users", 0) in simulator.requests


def test_slow(simulator, graph):
    simulator.faults.add(Fault(r"/users", "slow", delay=0.3))
    started = time.monotonic()
    assert graph.get("/v1.0/users").status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        simulator.faults.add(Fault(r"/users", "slow", delay=0.5))
        graph.get("/v1.0/users", timeout=0.1)


def test_truncated(simulator, graph):
    simulator.faults.add(Fault(r"/users", "truncated"))
    with pytest.raises(httpx.RemoteProtocolError):
        graph.get("/v1.0/users")


def test_invalid_json(simulator, graph):
    simulator.faults.add(Fault(r"/users", "invalid_json"))
    r = graph.get("/v1.0/users")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_drop_nextlink(many_users, graph):
    many_users.faults.add(Fault(r"/users/delta", "drop_nextlink"))
    page = graph.get(USERS, page_size=3).json()
    assert len(page["value"]) == 3
    assert "@odata.nextLink" not in page and "@odata.deltaLink" not in page


def test_loop_nextlink(many_users, graph):
    many_users.faults.add(Fault(r"skiptoken", "loop_nextlink", times=-1))
    first = graph.get(USERS, page_size=3).json()
    second = graph.get(first["@odata.nextLink"], page_size=3).json()
    assert second["@odata.nextLink"].endswith(first["@odata.nextLink"].split("/v1.0")[1])
    third = graph.get(second["@odata.nextLink"], page_size=3).json()
    assert third["value"] == second["value"]


@pytest.mark.parametrize("variant", [None, "missing_id"])
def test_malformed_item(many_users, graph, variant):
    many_users.faults.add(Fault(r"/users/delta", "malformed_item", variant=variant))
    items = graph.get(USERS, page_size=3).json()["value"]
    if variant is None:
        assert items[0]["id"] == "not-a-guid"
    else:
        assert "id" not in items[0]
    assert len(items) == 3
    assert graph.get(USERS, page_size=3).json()["value"][0]["id"] != "not-a-guid"


def test_duplicate_items(many_users, graph):
    first = graph.get(USERS, page_size=3).json()
    many_users.faults.add(Fault(r"/users/delta", "duplicate_items"))
    second = graph.get(first["@odata.nextLink"], page_size=3).json()
    assert second["value"][:3] == first["value"]
    assert len(second["value"]) == 6


def test_latency_is_per_request_and_does_not_block_others(tenant):
    from concurrent.futures import ThreadPoolExecutor

    from syncd.simulator import Simulator

    from .conftest import GraphClient
    with Simulator(tenant, latency=0.2) as sim:
        token = fetch_token(sim).json()["access_token"]
        clients = [GraphClient(sim, token) for _ in range(4)]
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda c: c.get("/v1.0/users").status_code, clients))
        assert codes == [200] * 4
        assert time.monotonic() - started < 0.6  # in parallel, not 4 x 0.2 s
        for c in clients:
            c.close()


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        Fault(r"/users", "explode")
    with pytest.raises(ValueError):
        Fault(r"/users", "status")


# ---------------------------------------------------------------------------- Retry-After forms


@pytest.mark.parametrize(("retry_after", "form", "header"), [
    (2.128, "seconds", "2.128"), (3, "seconds", "3"), (2, "decimal", "2.000"),
])
def test_retry_after_in_seconds(simulator, graph, retry_after, form, header):
    simulator.faults.add(Fault(USERS, "status", status=429, retry_after=retry_after,
                               retry_after_format=form))
    r = graph.http.get(USERS)
    assert r.status_code == 429 and r.headers["Retry-After"] == header


def test_retry_after_as_an_http_date(simulator, graph):
    simulator.faults.add(Fault(USERS, "status", status=503, retry_after=30, retry_after_format="date"))
    r = graph.http.get(USERS)
    assert r.status_code == 503 and r.headers["Retry-After"].endswith(" GMT")
    when = parsedate_to_datetime(r.headers["Retry-After"]).timestamp()
    exchange = simulator.exchanges[-1]
    # 30 s after the answer was written, in whole seconds as HTTP dates are
    assert exchange.received + 29 < when <= exchange.sent + 30


def test_throttled_without_retry_after(simulator, graph):
    simulator.faults.add(Fault(USERS, "status", status=429, retry_after=-1))
    r = graph.http.get(USERS)
    assert r.status_code == 429 and "Retry-After" not in r.headers


def test_throttling_body_and_headers_as_documented(simulator, graph):
    simulator.faults.add(Fault(USERS, "status", status=429, retry_after=2.128))
    r = graph.http.get(USERS)
    error = r.json()["error"]
    assert error["code"] == "TooManyRequests" and error["message"] == "Please retry again later."
    inner = error["innerError"]
    assert inner["code"] == "429" and inner["status"] == "429" and inner["request-id"] == r.headers["request-id"]
    t = simulator.tenant
    assert r.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{t.client_id}/{t.tenant_id}"
    assert r.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"


def test_unknown_retry_after_format_is_refused():
    with pytest.raises(ValueError):
        Fault(USERS, "status", status=429, retry_after_format="fortnight")


def test_exchanges_record_times_and_headers(simulator, graph):
    simulator.faults.add(Fault(USERS, "status", status=429, retry_after=0.5))
    graph.http.get(USERS)
    graph.http.get(USERS)
    throttled, ok = [e for e in simulator.exchanges if e.graph][-2:]
    assert (throttled.status, ok.status) == (429, 200)
    assert throttled.headers["Retry-After"] == "0.5" and "Retry-After" not in ok.headers
    assert throttled.received <= throttled.sent <= ok.received <= ok.sent
    assert any(not e.graph and "/oauth2/v2.0/token" in e.target for e in simulator.exchanges)
    simulator.reset_log()
    assert simulator.exchanges == []
