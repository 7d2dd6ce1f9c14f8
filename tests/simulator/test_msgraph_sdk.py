"""The real msgraph-sdk (kiota, with its default middleware) against the simulator."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import msal
import pytest
import requests

from syncd.simulator import Fault, Simulator, Tenant

from .conftest import DOMAIN

pytest.importorskip("msgraph")

from kiota_abstractions.authentication import (  # noqa: E402
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration  # noqa: E402
from msgraph import GraphRequestAdapter, GraphServiceClient  # noqa: E402
from msgraph.generated.groups.delta.delta_request_builder import (  # noqa: E402
    DeltaRequestBuilder as GroupsDelta,
)
from msgraph.generated.users.delta.delta_request_builder import (  # noqa: E402
    DeltaRequestBuilder as UsersDelta,
)
from msgraph_core import GraphClientFactory  # noqa: E402


class MsalTokens(AccessTokenProvider):
    def __init__(self, sim: Simulator) -> None:
        session = requests.Session()
        session.verify, session.trust_env = sim.ca_path, False
        self.app = msal.ConfidentialClientApplication(
            sim.tenant.client_id, client_credential=sim.tenant.client_secret,
            authority=sim.authority, http_client=session, instance_discovery=False)
        self.scope = sim.scope
        self.hosts = AllowedHostsValidator([f"127.0.0.1:{sim.port}"])

    async def get_authorization_token(self, uri: str, additional_authentication_context=None) -> str:
        return self.app.acquire_token_for_client([self.scope])["access_token"]

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self.hosts


def graph_client(sim: Simulator) -> GraphServiceClient:
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=sim.ca_path), trust_env=False))
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(MsalTokens(sim)), client=http)
    adapter.base_url = sim.url + "/v1.0"
    return GraphServiceClient(request_adapter=adapter)


async def read_all(builder, config: RequestConfiguration) -> tuple[list[Any], str]:
    page = await builder.get(request_configuration=config)
    items = list(page.value)
    while page.odata_next_link:
        page = await builder.with_url(page.odata_next_link).get()
        items += page.value
    return items, page.odata_delta_link


def test_users_and_groups_delta_through_the_sdk():
    t = Tenant(seed=5)
    users = [t.add_user(f"u{i}@{DOMAIN}") for i in range(30)]
    big = t.add_group("Big")
    for uid in users:
        t.add_member(big, uid)

    async def scenario(sim: Simulator) -> None:
        client = graph_client(sim)
        config = RequestConfiguration(query_parameters=UsersDelta.DeltaRequestBuilderGetQueryParameters(
            select=["id", "displayName", "accountEnabled", "userPrincipalName"]))
        config.headers.add("Prefer", "odata.maxpagesize=7")
        items, link = await read_all(client.users.delta, config)
        assert sorted(u.id for u in items) == sorted(users)
        t.soft_delete_user(users[0])
        t.update_user(users[1], display_name="Renamed")
        changes, _ = await read_all(client.users.delta.with_url(link), RequestConfiguration())
        by_id = {u.id: u for u in changes}
        assert by_id[users[0]].additional_data["@removed"] == {"reason": "changed"}
        assert by_id[users[1]].display_name == "Renamed"

        gconfig = RequestConfiguration(query_parameters=GroupsDelta.DeltaRequestBuilderGetQueryParameters(
            select=["displayName", "members"]))
        groups, _ = await read_all(client.groups.delta, gconfig)
        assert [g.id for g in groups] == [big, big, big]  # 29 members, 10 per page
        members = [str(m["id"]) for g in groups for m in g.additional_data["members@delta"]]
        assert members == users[1:]

    with Simulator(t, members_per_page=10) as sim:
        asyncio.run(scenario(sim))
        assert any("/users/delta()" in path for _, path, _ in sim.requests)


def test_sdk_retries_429_after_retry_after():
    t = Tenant(seed=6)
    t.assign(t.add_user(f"a@{DOMAIN}"))

    async def scenario(sim: Simulator) -> None:
        client = graph_client(sim)
        sim.faults.add(Fault(r"/appRoleAssignedTo", "status", status=429, retry_after=1))  # kiota reads integers only
        page = await client.service_principals.by_service_principal_id(
            t.service_principal_id).app_role_assigned_to.get()
        assert len(page.value) == 1 and page.value[0].principal_type == "User"

    with Simulator(t) as sim:
        asyncio.run(scenario(sim))
        assert [status for *_, status in sim.requests] == [429, 200]
