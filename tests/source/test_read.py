"""Full and incremental reads against the simulator: content, delta semantics, fallback,
concurrency and request counts."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import pytest

from syncd.errors import SourceError
from syncd.read import GraphPage
from syncd.simulator import Fault, Simulator, Tenant
from syncd.source import GraphSource, read_graph

from .conftest import DOMAIN, FAST, do_read, entra_for

# --------------------------------------------------------------------------- full reads


def test_full_read_has_everything(read, tenant):
    ids = tenant.ids
    r = read()
    assert r.full is True
    assert r.assignments == {ids["ada"]: "User", ids["team"]: "Group"}
    assert set(r.users) == {ids["ada"], ids["bob"], ids["cyd"], ids["dan"]}
    ada = r.users[ids["ada"]]
    assert (ada.user_principal_name, ada.display_name, ada.mail, ada.account_enabled, ada.user_type) == (
        f"ada@{DOMAIN}", "Ada Lovelace", f"ada@{DOMAIN}", True, "Member")
    assert r.users[ids["cyd"]].account_enabled is False
    assert r.groups[ids["team"]].display_name == "Team"
    assert r.groups[ids["team"]].security_enabled is True
    assert r.members_added == {ids["team"]: {ids["bob"]: "user", ids["cyd"]: "user"}}
    assert not r.removed_users and not r.removed_groups and not r.members_removed
    assert set(r.delta_links) == {"users", "groups"}
    assert r.graph_requests == 3 and r.throttled == 0


def test_member_types(sim, read, tenant):
    team = tenant.ids["team"]
    inner = tenant.add_group("Inner")
    device = tenant.add_device("laptop")
    app = tenant.add_service_principal("some app")
    for member in (inner, device, app):
        tenant.add_member(team, member)
    members = read().members_added[team]
    assert members[inner] == "group"
    assert members[device] == "other"
    assert members[app] == "other"
    assert members[tenant.ids["bob"]] == "user"


def test_big_group_spanning_pages_is_merged():
    t = Tenant(domain=DOMAIN, seed=3)
    big = t.add_group("Big")
    with t.bulk_load():
        uids = [t.add_user(f"u{i}@{DOMAIN}") for i in range(1200)]
        for uid in uids:
            t.add_member(big, uid)
    t.assign(big)
    with Simulator(t, members_per_page=100) as sim:
        r = do_read(entra_for(sim))
        group_pages = [target for _, target, _ in sim.requests if "groups/delta" in target]
    assert len(group_pages) > 1  # the group really was split
    assert set(r.members_added[big]) == set(uids)
    assert r.groups[big].display_name == "Big"
    assert len(r.users) == 1200


def test_duplicate_items_are_harmless(sim, read, tenant):
    clean = read()
    sim.faults.add(Fault(path="users/delta|groups/delta", kind="duplicate_items", times=-1))
    again = read()
    assert again.users == clean.users
    assert again.members_added == clean.members_added


def test_read_graph_sync_wrapper(entra, tenant):
    r = read_graph(entra, None, 30, tuning=FAST)
    assert r.full and tenant.ids["ada"] in r.users


def test_progress_reports_pages(read):
    seen: list[tuple[str, int]] = []
    read(progress=lambda kind, n: seen.append((kind, n)))
    kinds = {kind for kind, _ in seen}
    assert kinds == {"users", "groups", "assignments"}
    assert sum(n for kind, n in seen if kind == "users") == 4


def test_on_page_streams_instead_of_accumulating(read, tenant):
    pages: list[GraphPage] = []
    r = read(on_page=pages.append)
    assert r.full and set(r.delta_links) == {"users", "groups"}
    assert not r.users  # the caller got them
    assert {u.id for p in pages for u in p.users} == set(tenant.ids[k] for k in ("ada", "bob", "cyd", "dan"))
    assert any(p.kind == "assignments" and p.assignments for p in pages)


# --------------------------------------------------------------------------- incremental


def test_no_change_incremental_is_empty_and_cheap(read):
    first = read()
    r = read(first.delta_links)
    assert r.full is False
    assert not r.users and not r.groups and not r.removed_users and not r.members_added
    assert r.assignments == first.assignments  # assignments are complete every cycle
    assert r.graph_requests <= math.ceil(len(r.assignments) / 999) + 4
    assert r.graph_requests == 3


def test_incremental_user_changes(read, tenant):
    ids = tenant.ids
    links = read().delta_links
    eve = tenant.add_user(f"eve@{DOMAIN}", "Eve")
    tenant.update_user(ids["ada"], display_name="Ada King", mail="ada.king@contoso.com")
    tenant.disable_user(ids["bob"])
    r = read(links)
    assert r.full is False
    assert set(r.users) == {eve, ids["ada"], ids["bob"]}
    assert r.users[ids["ada"]].display_name == "Ada King"
    assert r.users[ids["ada"]].mail == "ada.king@contoso.com"
    assert r.users[ids["bob"]].account_enabled is False
    assert r.delta_links != links


def test_incremental_soft_delete_restore_hard_delete(read, tenant):
    ids = tenant.ids
    links = read().delta_links
    tenant.soft_delete_user(ids["bob"])
    r = read(links)
    assert r.removed_users == {ids["bob"]} and ids["bob"] not in r.users
    # a soft-deleted member also leaves its groups
    assert ids["bob"] in r.members_removed.get(ids["team"], set())

    tenant.restore_user(ids["bob"])
    r2 = read(r.delta_links)
    assert ids["bob"] in r2.users and not r2.removed_users

    tenant.hard_delete_user(ids["dan"])
    r3 = read(r2.delta_links)
    assert r3.removed_users == {ids["dan"]}


def test_incremental_group_changes(read, tenant):
    ids = tenant.ids
    links = read().delta_links
    tenant.rename_group(ids["team"], "Team Blue")
    ops = tenant.add_group("Ops")
    tenant.add_member(ops, ids["dan"])
    tenant.add_member(ids["team"], ids["ada"])
    tenant.remove_member(ids["team"], ids["cyd"])
    r = read(links)
    assert r.groups[ids["team"]].display_name == "Team Blue"
    assert r.groups[ops].display_name == "Ops"
    assert r.members_added[ops] == {ids["dan"]: "user"}
    assert r.members_added[ids["team"]] == {ids["ada"]: "user"}
    assert r.members_removed[ids["team"]] == {ids["cyd"]}

    tenant.delete_group(ops)
    r2 = read(r.delta_links)
    assert r2.removed_groups == {ops}
    assert ops not in r2.groups and ops not in r2.members_added


def test_incremental_assignment_changes(read, tenant):
    ids = tenant.ids
    links = read().delta_links
    tenant.assign(ids["dan"])
    tenant.unassign(ids["ada"])
    r = read(links)
    assert r.assignments == {ids["dan"]: "User", ids["team"]: "Group"}


def test_incremental_request_count_does_not_grow_with_changes(read, tenant):
    links = read().delta_links
    new = [tenant.add_user(f"n{i}@{DOMAIN}") for i in range(300)]  # logged: delta sees them
    for uid in new:
        tenant.assign(uid)
    r = read(links)
    assert set(new) <= set(r.users)
    assert r.graph_requests == 3  # one page per chain: nothing per user (no N+1)


# --------------------------------------------------------------------------- delta expiry


@pytest.mark.parametrize("style", ["gone", "syncStateNotFound"])
def test_expired_delta_links_fall_back_to_full_read(sim, read, tenant, style):
    links = read().delta_links
    tenant.add_user(f"new@{DOMAIN}")
    tenant.expire_delta_tokens(style=style)
    r = read(links)
    assert r.full is True
    assert len(r.users) == 5  # complete state, not just the change
    assert r.members_added[tenant.ids["team"]]
    statuses = [status for _, _, status in sim.requests]
    assert (410 if style == "gone" else 400) in statuses
    # and the new links work
    again = read(r.delta_links)
    assert again.full is False and not again.users


def test_fallback_tells_a_streaming_caller_to_reset(read, tenant):
    links = read().delta_links
    tenant.expire_delta_tokens()
    pages: list[GraphPage] = []
    r = read(links, on_page=pages.append)
    assert r.full is True
    kinds = [p.kind for p in pages]
    assert "reset" in kinds
    after = kinds[kinds.index("reset") + 1:]
    assert "users" in after and "groups" in after


def test_only_one_link_or_foreign_link_means_full_read(read, sim):
    links = read().delta_links
    assert read({"users": links["users"]}).full is True
    foreign = {"users": links["users"].replace("127.0.0.1", "graph.example.com"), "groups": links["groups"]}
    assert read(foreign).full is True


def test_fresh_chain_refused_is_an_error_not_a_loop(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="status", status=410, times=-1))
    with pytest.raises(SourceError) as err:
        read()
    assert err.value.kind == "server"


# --------------------------------------------------------------------------- concurrency, costs


def test_chains_run_concurrently(sim, entra):
    do_read(entra)  # warm-up: imports, token
    delay = 0.8
    sim.faults.add(Fault(path="appRoleAssignedTo|users/delta|groups/delta", kind="slow", delay=delay, times=3))

    async def run() -> float:
        async with GraphSource(entra, tuning=FAST) as source:
            await source.read(None)  # token + discovery first, outside the timing
            sim.faults.clear()
            sim.faults.add(Fault(path="appRoleAssignedTo|users/delta|groups/delta", kind="slow", delay=delay, times=3))
            started = time.perf_counter()
            await source.read(None)
            return time.perf_counter() - started

    elapsed = asyncio.run(run())
    assert elapsed < 2 * delay, f"three slow chains took {elapsed:.2f}s: they did not overlap"


def test_next_page_is_on_the_wire_before_this_one_is_processed():
    """While a users page is processed (here: the event loop blocked in ``on_page``), Graph
    already has the request for the next one: no round trip waits for the parsing."""
    t = Tenant(domain=DOMAIN, seed=5)
    with t.bulk_load():
        for i in range(25):
            t.assign(t.add_user(f"u{i}@{DOMAIN}"))
    pages = math.ceil(25 / 10)
    with Simulator(t) as sim:

        def users_requests() -> int:
            return sum(1 for _, target, _ in list(sim.requests) if "/users/delta" in target)

        answered: list[int] = []

        def on_page(page: GraphPage) -> None:
            if page.kind != "users":
                return
            if len(answered) + 1 < pages:  # a next page exists: its request must be out already
                deadline = time.monotonic() + 10
                while users_requests() <= len(answered) + 1 and time.monotonic() < deadline:
                    time.sleep(0.01)  # blocks the loop: only a request already sent gets answered
            answered.append(users_requests())

        do_read(entra_for(sim), tuning=dataclasses.replace(FAST, page_size=10), on_page=on_page)
    assert answered == [2, 3, 3]


def test_one_token_lookup_per_read_not_per_page(sim, entra, monkeypatch):
    t = sim.tenant
    for i in range(30):
        t.assign(t.add_user(f"p{i}@{DOMAIN}"))
    asked = 0

    async def run() -> int:
        nonlocal asked
        async with GraphSource(entra, tuning=dataclasses.replace(FAST, page_size=5)) as source:
            acquire = source.tokens.acquire

            def counting(claims_challenge: str | None = None) -> str:
                nonlocal asked
                asked += 1
                return acquire(claims_challenge)

            monkeypatch.setattr(source.tokens, "acquire", counting)
            first = await source.read(None)
            second = await source.read(first.delta_links)
            return first.graph_requests + second.graph_requests

    requests = asyncio.run(run())
    assert requests > 10
    assert asked == 2  # once per read, before its chains start; never per page


@pytest.mark.parametrize("assigned", [10, 2500])
def test_request_counts_do_not_depend_on_user_count(assigned):
    t = Tenant(domain=DOMAIN, seed=11)
    with t.bulk_load():
        uids = [t.add_user(f"u{i}@{DOMAIN}") for i in range(assigned)]
        for uid in uids:
            t.assign(uid)
        g = t.add_group("G")
        for uid in uids[:50]:
            t.add_member(g, uid)
    with Simulator(t) as sim:
        entra = entra_for(sim)
        full = do_read(entra)
        assignment_pages = math.ceil(assigned / 999)
        user_pages = math.ceil(assigned / 999)
        assert full.graph_requests == sim.graph_request_count()
        assert full.graph_requests == assignment_pages + user_pages + 1
        sim.reset_log()
        quiet = do_read(entra, full.delta_links)
        assert quiet.graph_requests == sim.graph_request_count()
        assert quiet.graph_requests <= assignment_pages + 4
        assert len(quiet.assignments) == assigned
