"""Provision on demand: named users and groups, their memberships, all assignments."""

from __future__ import annotations

import asyncio

import pytest

from syncd.errors import SourceError
from syncd.source import GraphSource, read_on_demand_graph

from .conftest import DOMAIN, FAST


def on_demand(entra, users=(), groups=()):
    async def run():
        async with GraphSource(entra, tuning=FAST, timeout_s=30) as source:
            return await source.read_on_demand(list(users), list(groups))

    return asyncio.run(run())


def test_user_by_upn_with_memberships(entra, tenant):
    ids = tenant.ids
    r = on_demand(entra, users=[f"bob@{DOMAIN}"])
    assert r.full is False
    assert set(r.users) == {ids["bob"]}
    assert r.members_added == {ids["team"]: {ids["bob"]: "user"}}
    assert r.users_read == {ids["bob"]} and r.groups_of == {ids["bob"]: {ids["team"]}}
    assert r.groups_read == set()  # Team came as one of bob's groups: its member list is not read
    assert r.groups[ids["team"]].display_name == "Team"
    assert r.assignments == {ids["ada"]: "User", ids["team"]: "Group"}
    assert not r.delta_links


def test_user_by_id_no_longer_in_an_assigned_group(entra, tenant):
    ids = tenant.ids
    tenant.remove_member(ids["team"], ids["bob"])
    r = on_demand(entra, users=[ids["bob"]])
    assert ids["bob"] in r.users
    # bob's groups are read whole: the store drops him from every group not listed (R14a)
    assert r.users_read == {ids["bob"]} and r.groups_of == {ids["bob"]: set()}
    assert r.members_added == {} and r.members_removed == {}


def test_deleted_user_by_id_is_removed(entra, tenant):
    ids = tenant.ids
    tenant.soft_delete_user(ids["dan"])
    r = on_demand(entra, users=[ids["dan"]])
    assert r.removed_users == {ids["dan"]} and not r.users
    assert r.users_read == {ids["dan"]}


def test_unknown_upn_is_not_found(entra):
    with pytest.raises(SourceError) as err:
        on_demand(entra, users=[f"nobody@{DOMAIN}"])
    assert err.value.kind == "not_found" and "nobody@" in str(err.value)


def test_group_by_name_with_members_and_their_users(entra, tenant):
    ids = tenant.ids
    r = on_demand(entra, groups=["team"])  # displayName match is case-insensitive in Graph
    assert r.groups[ids["team"]].display_name == "Team"
    assert r.members_added[ids["team"]] == {ids["bob"]: "user", ids["cyd"]: "user"}
    assert set(r.users) == {ids["bob"], ids["cyd"]}
    assert r.users[ids["cyd"]].account_enabled is False
    assert r.groups_read == {ids["team"]} and r.users_read == set()


def test_group_by_id_and_deleted_group(entra, tenant):
    ids = tenant.ids
    r = on_demand(entra, groups=[ids["team"]])
    assert ids["team"] in r.groups
    tenant.delete_group(ids["team"])
    r = on_demand(entra, groups=[ids["team"]])
    assert r.removed_groups == {ids["team"]}


def test_unknown_group_name_is_not_found(entra):
    with pytest.raises(SourceError) as err:
        on_demand(entra, groups=["No Such Group"])
    assert err.value.kind == "not_found"


def test_sync_wrapper(entra, tenant):
    r = read_on_demand_graph(entra, [f"ada@{DOMAIN}"], [], 30, tuning=FAST)
    assert tenant.ids["ada"] in r.users
    assert r.graph_requests == 3  # assignments, the user, its memberOf
