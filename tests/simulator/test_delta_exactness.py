"""Delta is exact: a client mirroring the rounds converges to the tenant, whatever happens.

Random mutations (users, groups, memberships, soft/hard deletes, restores, nesting), some
made in the middle of a paged round, random page sizes and member budgets. Drives the
DeltaService directly (HTTP is covered elsewhere) so hundreds of rounds take a second.

The mirror merges what it reads, as Graph's pages tell clients to: a property missing from
an object means "unchanged", an object may come more than once. So it must converge under
every documented quirk too (partial objects, repeats, empty pages, replays, ...).
"""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from syncd.simulator import Quirks, Tenant
from syncd.simulator.delta import DeltaService, DeltaSettings

BASE = "https://sim.example"


class Mirror:
    def __init__(self) -> None:
        self.users: dict[str, tuple[Any, ...]] = {}
        self.groups: dict[str, list[Any]] = {}

    def apply_users(self, items: list[dict[str, Any]], full: bool) -> None:
        if full:
            self.users = {}
        for item in items:
            if "@removed" in item:
                self.users.pop(item["id"], None)
            else:
                name, enabled = self.users.get(item["id"], (None, None))
                self.users[item["id"]] = (item.get("displayName", name),
                                          item.get("accountEnabled", enabled))

    def apply_groups(self, items: list[dict[str, Any]], full: bool) -> None:
        if full:
            self.groups = {}
        for item in items:
            if "@removed" in item:
                self.groups.pop(item["id"], None)
                continue
            group = self.groups.setdefault(item["id"], [None, set()])
            if "displayName" in item:
                group[0] = item["displayName"]
            for ref in item.get("members@delta", []):
                if "@removed" in ref:
                    group[1].discard(ref["id"])
                else:
                    group[1].add(ref["id"])


def truth(t: Tenant) -> tuple[dict, dict]:
    users = {u.id: (u.display_name, u.enabled) for u in t.users.values() if not u.soft_deleted}
    groups = {g.id: [g.name, set(g.members)] for g in t.groups.values()}
    return users, groups


def round_trip(delta: DeltaService, resource: str, url: str, size: int, mutate,
               minimal: bool = False) -> tuple[list, str]:
    items: list[dict[str, Any]] = []
    while True:
        split = urlsplit(url)
        page = delta.page(resource, dict(parse_qsl(split.query)), BASE, size, minimal)
        items += page.items
        if page.delta_link:
            return items, page.delta_link
        mutate()  # changes in the middle of a round must show up in a later one
        url = page.next_link


def mutator(t: Tenant, rng: random.Random):
    def mutate() -> None:
        live = [u.id for u in t.users.values() if not u.soft_deleted]
        deleted = [u.id for u in t.users.values() if u.soft_deleted]
        groups = list(t.groups)
        op = rng.randrange(11)
        if op == 0 or not live:
            t.add_user(f"u{t.version}@contoso.onmicrosoft.com", f"U{t.version}")
        elif op == 1:
            t.update_user(rng.choice(live), display_name=f"renamed {t.version}")
        elif op == 2:
            t.update_user(rng.choice(live), enabled=rng.random() < 0.5)
        elif op == 3:
            t.soft_delete_user(rng.choice(live))
        elif op == 4 and deleted:
            t.restore_user(rng.choice(deleted))
        elif op == 5:
            t.hard_delete_user(rng.choice(live + deleted))
        elif op == 6 or not groups:
            t.add_group(f"G{t.version}")
        elif op == 7:
            t.rename_group(rng.choice(groups), f"G renamed {t.version}")
        elif op == 8 and len(groups) > 3:
            t.delete_group(rng.choice(groups))
        elif op == 9:
            gid = rng.choice(groups)
            candidates = [x for x in live + groups if x != gid and x not in t.groups[gid].members]
            if candidates:
                t.add_member(gid, rng.choice(candidates))
        else:
            gid = rng.choice(groups)
            if t.groups[gid].members:
                t.remove_member(gid, rng.choice(list(t.groups[gid].members)))
    return mutate


QUIRKS = {
    "minimal": {"minimal": True},
    "some": {"properties": "some"},
    "changed+repeat": {"properties": "changed", "repeat": 2},
    "empty+repeat": {"empty_pages": 2, "repeat": 1, "continuation_props": True},
    "initial quirks": {"removed_in_initial": True, "omit_empty_members": True, "properties": "changed"},
    "replay": {"replay": True, "properties": "changed"},
    "hide unselected": {"hide_unselected": True, "minimal": True, "repeat": 1},
}


@pytest.mark.parametrize("seed", range(25))
def test_mirror_converges(seed):
    converges(seed, {})


@pytest.mark.parametrize("quirks", list(QUIRKS))
@pytest.mark.parametrize("seed", range(6))
def test_mirror_converges_under_quirks(seed, quirks):
    converges(seed, QUIRKS[quirks])


def converges(seed: int, quirks: dict[str, Any]) -> None:
    quirks = dict(quirks)
    minimal = quirks.pop("minimal", False)
    rng = random.Random(seed)
    t = Tenant(seed=seed)
    users = [t.add_user(f"p{i}@contoso.onmicrosoft.com", f"P{i}") for i in range(rng.randrange(1, 30))]
    for g in range(rng.randrange(1, 6)):
        gid = t.add_group(f"Initial {g}")
        for uid in rng.sample(users, rng.randrange(len(users) + 1)):
            t.add_member(gid, uid)
    delta = DeltaService(t, DeltaSettings(members_per_page=rng.randrange(1, 8)), Quirks(**quirks))
    mutate = mutator(t, rng)
    mirror = Mirror()
    users_url = f"{BASE}/v1.0/users/delta?$select=displayName,accountEnabled"
    groups_url = f"{BASE}/v1.0/groups/delta?$select=displayName,members"
    quiet = lambda: None  # noqa: E731
    for round_no in range(8):
        noisy = mutate if round_no < 6 else quiet  # the last rounds run on a still tenant
        size = rng.randrange(1, 10)
        items, users_url = round_trip(delta, "users", users_url, size, noisy, minimal)
        mirror.apply_users(items, full=round_no == 0)
        items, groups_url = round_trip(delta, "groups", groups_url, size, noisy, minimal)
        mirror.apply_groups(items, full=round_no == 0)
        for _ in range(rng.randrange(6)):
            if round_no < 6:
                mutate()
    expected_users, expected_groups = truth(t)
    assert mirror.users == expected_users
    assert mirror.groups == expected_groups
