"""Every fault the simulator can inject, on Graph: retried when transient (R17), a
SourceError of the right kind otherwise, and never a partial GraphRead (R14)."""

from __future__ import annotations

import time

import pytest

from syncd.errors import SourceError
from syncd.simulator import Fault
from syncd.source import Tuning

from .conftest import FAST

CHAINS = "appRoleAssignedTo|users/delta|groups/delta"


def fails(read, **kw) -> SourceError:
    with pytest.raises(SourceError) as err:
        read(**kw)
    return err.value


# --------------------------------------------------------------------------- throttling


def test_429_storm_honours_retry_after(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="status", status=429, retry_after=1, times=2))
    started = time.monotonic()
    r = read()
    elapsed = time.monotonic() - started
    assert len(r.users) == 4
    assert r.throttled == 2
    assert r.graph_requests == 3 + 2 == sim.graph_request_count()
    assert elapsed >= 2.0, "Retry-After: 1 twice means at least two seconds of waiting"


def test_429_on_every_chain_at_once(sim, read):
    sim.faults.add(Fault(path=CHAINS, kind="status", status=429, retry_after=1, times=3))
    r = read()
    assert r.throttled == 3 and r.graph_requests == 6
    assert r.assignments and r.users and r.groups


@pytest.mark.parametrize("status", [503, 504])
@pytest.mark.parametrize("retry_after", [1, None])
def test_503_504_with_and_without_retry_after(sim, read, status, retry_after):
    # (the simulator adds Retry-After: 1 to a 503 that names none, as Graph does)
    sim.faults.add(Fault(path="groups/delta", kind="status", status=status, retry_after=retry_after, times=2))
    r = read()
    assert r.groups and r.throttled == 2
    assert r.graph_requests == 5


def test_persistent_504_gives_up_as_throttled(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="status", status=504, times=-1))
    tuning = Tuning(backoff_initial_s=0.01, backoff_max_s=0.02, throttle_retries=2, max_attempts=2)
    err = fails(read, tuning=tuning)
    assert err.kind == "throttled"
    assert "/v1.0/users/delta" in str(err)
    # 2 attempts x (1 + 2 RetryHandler retries) on the users chain, 1 each for the others
    users_requests = [t for _, t, _ in sim.requests if "users/delta" in t]
    assert len(users_requests) == 6


def test_retry_after_beyond_the_budget_fails_now(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="status", status=429, retry_after=600, times=-1))
    started = time.monotonic()
    err = fails(read, timeout_s=60)
    assert err.kind == "throttled"
    assert time.monotonic() - started < 10  # did not sleep 600 s into the timeout


# --------------------------------------------------------------------------- transient errors


@pytest.mark.parametrize("status", [500, 502])
def test_500_502_back_off_and_recover(sim, read, status):
    sim.faults.add(Fault(path="users/delta", kind="status", status=status, times=2))
    r = read()
    assert len(r.users) == 4
    assert r.graph_requests == 5 and r.throttled == 0


def test_persistent_500_fails_as_server(sim, read):
    sim.faults.add(Fault(path="appRoleAssignedTo", kind="status", status=500, times=-1))
    err = fails(read)
    assert err.kind == "server"
    assert "appRoleAssignedTo" in str(err)
    assert len([t for _, t, _ in sim.requests if "appRoleAssignedTo" in t]) == FAST.max_attempts


def test_connection_reset_is_retried(sim, read):
    sim.faults.add(Fault(path="groups/delta", kind="reset", times=2))
    r = read()
    assert r.members_added


def test_persistent_reset_fails_as_network(sim, read):
    sim.faults.add(Fault(path="groups/delta", kind="reset", times=-1))
    err = fails(read)
    assert err.kind == "network"


def test_slow_answer_past_the_request_timeout_is_retried(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="slow", delay=1.5, times=1))
    tuning = Tuning(backoff_initial_s=0.01, backoff_max_s=0.02, read_timeout_s=0.5)
    r = read(tuning=tuning)
    assert len(r.users) == 4


def test_slow_past_the_cycle_budget_times_out(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="slow", delay=4, times=-1))
    started = time.monotonic()
    err = fails(read, timeout_s=1.0)
    assert err.kind == "timeout"
    assert time.monotonic() - started < 3.5


# --------------------------------------------------------------------------- malformed data


def test_truncated_body_is_retried(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="truncated", times=1))
    assert len(read().users) == 4


def test_persistently_truncated_body_is_malformed(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="truncated", times=-1))
    err = fails(read)
    assert err.kind == "malformed" and "truncated" in str(err)


def test_invalid_json_is_malformed(sim, read):
    sim.faults.add(Fault(path="groups/delta", kind="invalid_json"))
    err = fails(read)
    assert err.kind == "malformed"
    assert "/v1.0/groups/delta" in str(err) and "JSON" in str(err)


def test_dropped_nextlink_is_a_missing_page(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="drop_nextlink"))
    err = fails(read)
    assert err.kind == "malformed" and "nextLink" in str(err)


def test_dropped_nextlink_mid_chain(sim, read, tenant):
    for i in range(30):
        tenant.add_user(f"x{i}@contoso.onmicrosoft.com")
    sim.faults.add(Fault(path="users/delta", kind="drop_nextlink", after=1))
    err = fails(read, tuning=Tuning(backoff_initial_s=0.01, backoff_max_s=0.02, page_size=10))
    assert err.kind == "malformed"


def test_looping_nextlink_is_detected(sim, read):
    sim.faults.add(Fault(path="groups/delta", kind="loop_nextlink", times=-1))
    err = fails(read)
    assert err.kind == "malformed" and "loop" in str(err)
    # detected on the first repeat, not after running around
    assert len([t for _, t, _ in sim.requests if "groups/delta" in t]) == 1


@pytest.mark.parametrize("variant", ["bad_id", "missing_id"])
@pytest.mark.parametrize("path", ["users/delta", "groups/delta"])
def test_malformed_item_fails_the_read(sim, read, variant, path):
    sim.faults.add(Fault(path=path, kind="malformed_item", variant=variant))
    err = fails(read)
    assert err.kind == "malformed" and path.split("/")[0] in str(err)


def test_assignment_without_id_is_malformed(sim, read):
    sim.faults.add(Fault(path="appRoleAssignedTo", kind="malformed_item", variant="missing_id"))
    assert fails(read).kind == "malformed"


def test_a_failure_in_one_chain_is_the_whole_read(sim, entra):
    """R14: the other chains' pages never leak out as a partial result."""
    from .conftest import do_read

    sim.faults.add(Fault(path="groups/delta", kind="invalid_json"))
    pages = []
    with pytest.raises(SourceError):
        do_read(entra, on_page=pages.append)


# --------------------------------------------------------------------------- errors with fixes


def test_403_names_the_missing_permission(tenant, read):
    tenant.permissions.discard("GroupMember.Read.All")
    err = fails(read)
    assert err.kind == "permission"
    assert "GroupMember.Read.All" in err.fix and "admin consent" in err.fix


def test_403_on_assignments_names_application_read_all(tenant, read):
    tenant.permissions.discard("Application.Read.All")
    err = fails(read)
    assert err.kind == "permission" and "Application.Read.All" in err.fix


def test_wrong_service_principal_id_says_so(sim, read, entra):
    import dataclasses
    import uuid

    err = fails(read, entra=dataclasses.replace(entra, service_principal_id=str(uuid.uuid4())))
    assert err.kind == "not_found"
    assert "entra.service_principal_id" in str(err) and "Enterprise application" in err.fix
    err = fails(read, entra=dataclasses.replace(entra, service_principal_id="my-app"))
    assert err.kind == "not_found" and "entra.service_principal_id" in str(err)


# --------------------------------------------------------------------------- the prefetched page


def _asyncio_complaints(caplog) -> list[str]:
    import gc

    gc.collect()  # "exception was never retrieved" / "destroyed but pending" come at collection
    return [r.getMessage() for r in caplog.records if r.name == "asyncio"]


def test_a_page_failing_while_the_next_is_in_flight_fails_cleanly(sim, read, tenant, caplog):
    """The next page is requested before this one is processed; when this one is malformed
    the read fails as malformed, and the request in flight is dropped, not left dangling."""
    for i in range(30):
        tenant.add_user(f"x{i}@contoso.onmicrosoft.com")
    sim.faults.add(Fault(path="users/delta", kind="malformed_item", variant="bad_id", after=1))
    err = fails(read, tuning=Tuning(backoff_initial_s=0.01, backoff_max_s=0.02, page_size=10))
    assert err.kind == "malformed"
    users_pages = [t for _, t, _ in sim.requests if "users/delta" in t]
    assert 2 <= len(users_pages) <= 3, users_pages  # the bad page, at most one prefetched after it
    assert _asyncio_complaints(caplog) == []


def test_a_consumer_failing_mid_chain_stops_the_prefetch(sim, entra, tenant, caplog):
    from .conftest import do_read

    for i in range(30):
        tenant.add_user(f"x{i}@contoso.onmicrosoft.com")

    class Refused(Exception):
        pass

    def on_page(page):
        if page.kind == "users":
            raise Refused("the consumer gave up")

    with pytest.raises(Refused):
        do_read(entra, on_page=on_page, tuning=Tuning(page_size=10))
    users_pages = [t for _, t, _ in sim.requests if "users/delta" in t]
    assert len(users_pages) <= 2, "only the page in flight when the consumer failed"
    assert _asyncio_complaints(caplog) == []
