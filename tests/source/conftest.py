"""Fixtures for the Graph source tests: the real simulator, real msal, real msgraph-sdk.

- ``tenant``: ada (assigned directly), bob + cyd (members of the assigned group Team), dan
  (unassigned); ``tenant.ids`` names them
- ``sim``: the tenant served over HTTPS on 127.0.0.1
- ``entra``: an EntraConfig for ``sim`` (client secret, ``ca_bundle=sim.ca_path``)
- ``read`` / ``read_on_demand``: one read with fast retry delays (``FAST``)
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncd.config import Credential, EntraConfig
from syncd.model import GraphRead
from syncd.simulator import Simulator, Tenant
from syncd.source import GraphSource, Tuning

DOMAIN = "contoso.onmicrosoft.com"

# retry delays in milliseconds so fault tests stay fast; Retry-After headers still count
FAST = Tuning(backoff_initial_s=0.01, backoff_max_s=0.05, connect_timeout_s=5, read_timeout_s=10)


def small_tenant() -> Tenant:
    t = Tenant(domain=DOMAIN, seed=7)
    ada = t.add_user(f"ada@{DOMAIN}", "Ada Lovelace", mail=f"ada@{DOMAIN}")
    bob = t.add_user(f"bob@{DOMAIN}", "Bob")
    cyd = t.add_user(f"cyd@{DOMAIN}", "Cyd", enabled=False)
    dan = t.add_user(f"dan@{DOMAIN}", "Dan")
    team = t.add_group("Team")
    t.add_member(team, bob)
    t.add_member(team, cyd)
    t.assign(ada)
    t.assign(team)
    t.ids = {"ada": ada, "bob": bob, "cyd": cyd, "dan": dan, "team": team}  # type: ignore[attr-defined]
    return t


def entra_for(sim: Simulator, **changes: Any) -> EntraConfig:
    t = sim.tenant
    config = EntraConfig(
        tenant_id=t.tenant_id,
        client_id=t.client_id,
        service_principal_id=t.service_principal_id,
        credential=Credential("secret", "test", secret=t.client_secret),
        authority_host=sim.url,
        graph_endpoint=sim.url,
        ca_bundle=sim.ca_path,
    )
    return dataclasses.replace(config, **changes)


def with_secret(entra: EntraConfig, secret: str) -> EntraConfig:
    return dataclasses.replace(entra, credential=Credential("secret", "test", secret=secret))


def do_read(entra: EntraConfig, links: dict[str, str] | None = None, *, tuning: Tuning = FAST, timeout_s: float | None = 30, **kw: Any) -> GraphRead:
    async def run() -> GraphRead:
        async with GraphSource(entra, tuning=tuning, timeout_s=timeout_s, progress=kw.pop("progress", None)) as source:
            return await source.read(links, **kw)

    return asyncio.run(run())


@pytest.fixture
def tenant() -> Tenant:
    return small_tenant()


@pytest.fixture
def sim(tenant: Tenant) -> Iterator[Simulator]:
    with Simulator(tenant) as simulator:
        yield simulator


@pytest.fixture
def entra(sim: Simulator) -> EntraConfig:
    return entra_for(sim)


@pytest.fixture
def read(entra: EntraConfig) -> Callable[..., GraphRead]:
    def run(links: dict[str, str] | None = None, **kw: Any) -> GraphRead:
        return do_read(kw.pop("entra", entra), links, **kw)

    return run
