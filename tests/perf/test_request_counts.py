"""Graph request counts (issue 3): a quiet cycle is nearly free, and nothing is read per object.

Counted by the simulator (every Graph request that reached it, retries included) and
checked against the cycle report's ``graph_requests``. Counts only, never timings.
"""

from __future__ import annotations

import math

import pytest

from syncd.simulator import Simulator
from syncd.simulator.generate import generate_tenant

from .conftest import Syncd


def quiet_limit(assignments: int) -> int:
    """The issue's budget for an incremental cycle with nothing changed."""
    return math.ceil(assignments / 999) + 4


@pytest.fixture(scope="module")
def tenant_2100():
    # 2,100 users assigned directly + 20 groups: 2,120 assignments = 3 pages of 999
    return generate_tenant(2_100, 20, 10, nested_groups=2, guests=21, disabled=21, assign="users", seed=3)


def test_quiet_incremental_cycle_stays_within_the_budget(tmp_path, tenant_2100):
    t = tenant_2100
    for gid in list(t.groups)[:20]:
        t.assign(gid)
    assignments = len(t.assignments)
    assert math.ceil(assignments / 999) == 3
    with Simulator(t) as sim:
        s = Syncd(sim, tmp_path)
        full, _ = s.cycle()
        assert full.mode == "full"
        for _ in range(2):  # the first after a full cycle, and the one after that
            report, seen = s.cycle()
            assert report.mode == "incremental"
            assert seen == report.graph_requests, "the report must count what went on the wire"
            assert seen <= quiet_limit(assignments), (seen, quiet_limit(assignments))
        # a cycle with changes does not cost more requests per changed object
        uids = list(t.users)[:300]
        for uid in uids:
            t.update_user(uid, display_name="renamed " + uid[:8])
        report, changed = s.cycle()
        assert report.counts.get("update") == sum(t.users[u].enabled for u in uids)  # disabled ones were never created
        assert changed <= quiet_limit(assignments) + 2, changed
        # ... and the next quiet one is back within the budget
        _, seen = s.cycle()
        assert seen <= quiet_limit(assignments)


def test_quiet_incremental_cycle_through_the_cli(tmp_path):
    t = generate_tenant(300, 6, 30, assign="both", seed=4)
    with Simulator(t) as sim:
        s = Syncd(sim, tmp_path)
        s.cli_cycle()
        report, seen = s.cli_cycle()
        assert report["mode"] == "incremental"
        assert report["graph_requests"] == seen
        assert seen <= quiet_limit(len(t.assignments))


def _full_cycle_requests(tmp_path, users: int, groups: int, members: int, **sim_args) -> int:
    t = generate_tenant(users, groups, members, nested_groups=1, guests=users // 20, disabled=users // 20,
                        assign="both", seed=5)
    with Simulator(t, **sim_args) as sim:
        s = Syncd(sim, tmp_path / f"u{users}g{groups}")
        report, seen = s.cycle()
        assert report.mode == "full"
        assert seen == report.graph_requests
        # the cycle really provisioned what it read
        assert report.counts.get("create", 0) >= users // 2
        return seen


def test_full_cycle_requests_do_not_grow_with_users_or_groups(tmp_path):
    """An N+1 pattern (a request per user, per group or per member) fails here.

    50 users / 5 groups and 500 users / 50 groups (5 members each: 250 memberships, under
    the simulator's 500 members@delta per page) both fit one page of every chain, so a
    source that reads in pages makes the same number of requests for both.
    """
    small = _full_cycle_requests(tmp_path, 50, 5, 5)
    large = _full_cycle_requests(tmp_path, 500, 50, 5)
    assert large == small, f"{small} requests for 50 users, {large} for 500: something is read per object"
    assert small <= 6


def test_full_cycle_requests_grow_with_pages(tmp_path):
    """With 100-item pages, requests follow ceil(objects / 100) per chain, not objects."""
    users, groups, per_group = 1_000, 40, 20
    seen = _full_cycle_requests(tmp_path, users, groups, per_group, page_size_cap=100)
    assignments = groups + users // 10
    group_items = groups + 1  # + the nested group
    budget = math.ceil(assignments / 100) + math.ceil(users / 100) + math.ceil(group_items / 100) + 2
    assert seen <= budget, (seen, budget)
    assert seen >= math.ceil(users / 100), "the users chain cannot be shorter than its pages"
