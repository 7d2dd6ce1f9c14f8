"""Fixtures for the simulator's tests, reusable by anyone who needs a tenant over HTTPS.

- ``tenant``: a small Tenant (3 users, one group, assignments) -- see ``small_tenant``
- ``simulator``: a running Simulator over ``tenant`` (stopped after the test)
- ``graph``: a :class:`GraphClient` (plain httpx, bearer token from the token endpoint)
- ``rsa_certificate``: an RSA key + certificate (PEM) for certificate-credential tests
- ``msal_session``: a ``requests.Session`` that trusts only the simulator's CA
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from syncd.simulator import Simulator, Tenant

DOMAIN = "contoso.onmicrosoft.com"


def small_tenant() -> Tenant:
    """ada (assigned directly), bob and cyd (members of the assigned group Team)."""
    t = Tenant(domain=DOMAIN, seed=1)
    ada = t.add_user(f"ada@{DOMAIN}", "Ada Lovelace", mail=f"ada@{DOMAIN}")
    bob = t.add_user(f"bob@{DOMAIN}", "Bob", mail=None)
    cyd = t.add_user(f"cyd@{DOMAIN}", "Cyd", enabled=False)
    team = t.add_group("Team")
    t.add_member(team, bob)
    t.add_member(team, cyd)
    t.assign(ada)
    t.assign(team)
    t.ids = {"ada": ada, "bob": bob, "cyd": cyd, "team": team}  # type: ignore[attr-defined]
    return t


def trust(sim: Simulator) -> ssl.SSLContext:
    """An SSL context trusting only the simulator's CA."""
    return ssl.create_default_context(cafile=sim.ca_path)


def fetch_token(sim: Simulator, **form: str) -> httpx.Response:
    data = {"grant_type": "client_credentials", "client_id": sim.tenant.client_id,
            "client_secret": sim.tenant.client_secret, "scope": sim.scope, **form}
    with httpx.Client(verify=trust(sim), trust_env=False) as http:
        return http.post(f"{sim.url}/{sim.tenant.tenant_id}/oauth2/v2.0/token", data=data)


class GraphClient:
    """httpx against the simulator's Graph, with helpers to walk pages."""

    def __init__(self, sim: Simulator, token: str | None = None) -> None:
        self.sim = sim
        token = token or fetch_token(sim).json()["access_token"]
        self.http = httpx.Client(base_url=sim.url, verify=trust(sim), trust_env=False,
                                 headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def get(self, url: str, page_size: int | None = None, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if page_size:
            headers["Prefer"] = f"odata.maxpagesize={page_size}"
        return self.http.get(url, headers=headers, **kwargs)

    def pages(self, url: str, page_size: int | None = None, limit: int = 10_000,
              **kwargs: Any) -> list[dict[str, Any]]:
        """Every page of a collection, following @odata.nextLink (asserting 200s)."""
        out = []
        response = self.get(url, page_size, **kwargs)
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            out.append(body)
            if "@odata.nextLink" not in body or len(out) >= limit:
                return out
            response = self.get(body["@odata.nextLink"], page_size)

    def collect(self, url: str, page_size: int | None = None,
                **kwargs: Any) -> tuple[list[dict[str, Any]], str | None]:
        """(all items, the final deltaLink or None)."""
        pages = self.pages(url, page_size, **kwargs)
        return [i for p in pages for i in p["value"]], pages[-1].get("@odata.deltaLink")

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def tenant() -> Tenant:
    return small_tenant()


@pytest.fixture
def simulator(tenant: Tenant) -> Iterator[Simulator]:
    with Simulator(tenant) as sim:
        yield sim


@pytest.fixture
def graph(simulator: Simulator) -> Iterator[GraphClient]:
    client = GraphClient(simulator)
    yield client
    client.close()


@pytest.fixture
def msal_session(simulator: Simulator) -> Iterator[requests.Session]:
    session = requests.Session()
    session.verify = simulator.ca_path
    session.trust_env = False  # this machine sets REQUESTS_CA_BUNDLE, which would win
    yield session
    session.close()


@dataclass(frozen=True)
class Certificate:
    key_pem: bytes
    cert_pem: bytes
    thumbprint: str  # SHA-1, hex


@pytest.fixture(scope="session")
def rsa_certificate() -> Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncd-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return Certificate(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM),
        cert.fingerprint(hashes.SHA1()).hex())
