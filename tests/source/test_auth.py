"""Tokens (real msal against the simulator's token endpoint), TLS trust and 401 handling."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import socket

import certifi
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from syncd.config import Credential
from syncd.errors import SourceError
from syncd.simulator import Fault, Simulator, Tenant
from syncd.source import GraphSource, Tuning

from .conftest import FAST, do_read, entra_for, with_secret


def fails(read, **kw) -> SourceError:
    with pytest.raises(SourceError) as err:
        read(**kw)
    return err.value


def make_certificate(key=None, days: int = 30) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM), self-signed."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncd-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2)).not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def cert_credential(key_pem: bytes, cert_pem: bytes) -> Credential:
    return Credential("certificate", "entra.client_certificate_file test.pem", certificate_pem=key_pem + cert_pem, certificate_file="test.pem")


# --------------------------------------------------------------------------- credentials


def test_certificate_credential(sim, tenant, entra):
    key_pem, cert_pem = make_certificate()
    tenant.add_certificate(cert_pem)
    r = do_read(dataclasses.replace(entra, credential=cert_credential(key_pem, cert_pem)))
    assert len(r.users) == 4


def test_unregistered_certificate_is_refused_with_a_fix(entra, read):
    key_pem, cert_pem = make_certificate()
    err = fails(read, entra=dataclasses.replace(entra, credential=cert_credential(key_pem, cert_pem)))
    assert err.kind == "auth" and "AADSTS700027" in str(err)
    assert "upload the certificate" in err.fix


def test_ecdsa_certificate_is_refused_locally(entra, read, sim):
    key_pem, cert_pem = make_certificate(ec.generate_private_key(ec.SECP256R1()))
    err = fails(read, entra=dataclasses.replace(entra, credential=cert_credential(key_pem, cert_pem)))
    assert err.kind == "auth" and "RSA" in str(err)
    assert sim.token_request_count() == 0


def test_expired_certificate_is_refused_locally(entra, read):
    key_pem, cert_pem = make_certificate(days=-1)
    err = fails(read, entra=dataclasses.replace(entra, credential=cert_credential(key_pem, cert_pem)))
    assert err.kind == "auth" and "expired" in str(err)


def test_certificate_not_matching_the_key(entra, read):
    key_pem, _ = make_certificate()
    _, other_cert = make_certificate()
    err = fails(read, entra=dataclasses.replace(entra, credential=cert_credential(key_pem, other_cert)))
    assert err.kind == "auth" and "matches" in str(err)


def test_wrong_secret(entra, read):
    err = fails(read, entra=with_secret(entra, "not-the-secret-value-1234"))
    assert err.kind == "auth" and "AADSTS7000215" in str(err)
    assert "entra.client_secret_file" in err.fix


def test_expired_secret(tenant, read):
    tenant.secret_expired = True
    err = fails(read)
    assert err.kind == "auth" and "AADSTS7000222" in str(err) and "new client secret" in err.fix


def test_unknown_client_id(entra, read):
    err = fails(read, entra=dataclasses.replace(entra, client_id="11111111-2222-4333-8444-555555555555"))
    assert err.kind == "auth" and "AADSTS700016" in str(err) and "entra.client_id" in err.fix


def test_unknown_tenant(entra, read):
    err = fails(read, entra=dataclasses.replace(entra, tenant_id="nosuchtenant.onmicrosoft.com"))
    assert err.kind == "auth" and "AADSTS90002" in str(err) and "entra.tenant_id" in err.fix


def test_msal_talks_only_to_the_configured_authority(sim, read):
    read()
    # discovery of the tenant's OIDC document + one token POST; no instance discovery
    # (which would have gone to login.microsoftonline.com and failed offline)
    assert sim.token_request_count() == 1
    assert all(sim.tenant.tenant_id in target for _, target, _ in sim.token_requests)


# --------------------------------------------------------------------------- token endpoint faults


@pytest.mark.parametrize("status,retry_after", [(429, 1), (500, None), (503, 1), (504, None)])
def test_token_endpoint_transient_errors_are_retried(sim, read, status, retry_after):
    sim.faults.add(Fault(path="oauth2/v2.0/token", kind="status", status=status, retry_after=retry_after, times=2))
    r = read()
    assert len(r.users) == 4
    assert sim.token_request_count() == 3


def test_token_endpoint_down_fails_the_read(sim, read):
    sim.faults.add(Fault(path="oauth2/v2.0/token", kind="status", status=500, times=-1))
    err = fails(read)
    assert err.kind == "server" and "token endpoint" in str(err)
    assert sim.token_request_count() == FAST.max_attempts


def test_token_endpoint_asking_too_long_a_wait_fails_as_throttled(sim, read):
    sim.faults.add(Fault(path="oauth2/v2.0/token", kind="status", status=429, retry_after=3600, times=-1))
    err = fails(read)
    assert err.kind == "throttled"
    assert sim.token_request_count() == 1


def test_token_endpoint_reset_is_retried(sim, read):
    sim.faults.add(Fault(path="oauth2/v2.0/token", kind="reset", times=1))
    assert read().users


# --------------------------------------------------------------------------- 401 from Graph


def test_revoked_token_mid_cycle_gets_exactly_one_refresh(sim, entra):
    async def run() -> None:
        async with GraphSource(entra, tuning=FAST) as source:
            first = await source.read(None)
            assert sim.token_request_count() == 1
            sim.revoke_tokens()  # msal's cache still holds the now refused token
            second = await source.read(first.delta_links)
            assert second.full is False
            # three chains each got a 401; one fresh token served them all
            assert sim.token_request_count() == 2
            statuses = [status for _, _, status in sim.requests]
            assert statuses.count(401) == 3

    asyncio.run(run())


def test_401_that_persists_is_an_auth_error_after_one_refresh(sim, read):
    sim.faults.add(Fault(path="users/delta", kind="status", status=401, times=-1))
    err = fails(read)
    assert err.kind == "auth" and "401" in str(err)
    assert sim.token_request_count() == 2  # the first token, then exactly one refresh


@pytest.mark.parametrize(("expires_in", "reused_for"), [(3600, 1800), (500, 200), (250, 0), (None, 0), ("x", 0)])
def test_tokens_are_reused_for_half_their_life_never_into_the_last_five_minutes(expires_in, reused_for):
    from syncd.source.auth import _reuse_for

    assert _reuse_for(expires_in) == reused_for


@pytest.mark.parametrize(("lifetime", "reused"), [(3600, True), (250, False)])
def test_current_token_only_while_far_from_expiry(tenant, lifetime, reused):
    from syncd.source.auth import TokenSource

    with Simulator(tenant, token_lifetime=lifetime) as sim:
        tokens = TokenSource(entra_for(sim))
        assert tokens.current() is None  # nothing fetched yet
        token = tokens.acquire()
        assert tokens.current() == (token if reused else None)
        tokens.refresh(token)  # Graph refused it: never handed out again
        assert tokens.current() != token
        tokens.close()


def test_token_is_only_sent_to_the_graph_host(entra):
    from syncd.source.auth import TokenSource
    from syncd.source.client import MsalTokenProvider

    class Exploding(TokenSource):
        def acquire(self, claims_challenge=None):  # noqa: ARG002
            raise AssertionError("asked for a token for a foreign host")

    provider = MsalTokenProvider(Exploding(entra), "graph.microsoft.com")

    async def tokens() -> list[str]:
        return [
            await provider.get_authorization_token("https://evil.example.com/v1.0/users"),
            await provider.get_authorization_token("http://graph.microsoft.com/v1.0/users"),
            await provider.get_authorization_token("https://graph.microsoft.com.evil.com/v1.0/users"),
        ]

    assert asyncio.run(tokens()) == ["", "", ""]


def test_links_to_other_hosts_are_refused():
    """A nextLink off the Graph host is not followed (the token would go with it)."""
    from syncd.source.client import check_link

    base = "https://graph.microsoft.com/v1.0"
    assert check_link(base, "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=x", "users delta")
    for link in ("https://evil.example.com/v1.0/users?$skiptoken=x", "http://graph.microsoft.com/v1.0/users"):
        with pytest.raises(SourceError) as err:
            check_link(base, link, "users delta")
        assert err.value.kind == "malformed"


# --------------------------------------------------------------------------- secrets stay secret


def test_secret_and_tokens_never_in_errors_or_logs(sim, tenant, entra, caplog):
    caplog.set_level(logging.DEBUG)
    secret = tenant.client_secret
    sim.faults.add(Fault(path="oauth2/v2.0/token", kind="status", status=500, times=1))
    sim.faults.add(Fault(path="users/delta", kind="status", status=429, retry_after=1, times=1))
    do_read(entra)
    wrong = "Wr0ng-but-secret-looking-value~42"
    with pytest.raises(SourceError) as err:
        do_read(with_secret(entra, wrong))
    sim.faults.add(Fault(path="groups/delta", kind="invalid_json"))
    with pytest.raises(SourceError) as err2:
        do_read(entra)
    issued = list(sim.tokens._expiry)  # every access token the simulator handed out
    assert issued
    texts = [caplog.text, str(err.value), repr(err.value), str(err2.value), repr(entra)]
    for text in texts:
        assert secret not in text
        assert wrong not in text
        for token in issued:
            assert token not in text


# --------------------------------------------------------------------------- TLS and network


def test_env_ca_bundles_pointing_elsewhere_do_not_break_ca_bundle(monkeypatch, read):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, certifi.where())  # a store without the simulator's CA
    assert len(read().users) == 4


def test_untrusted_certificate_is_a_tls_error_naming_ca_bundle(entra, read):
    err = fails(read, entra=dataclasses.replace(entra, ca_bundle=None))
    assert err.kind == "tls"
    assert "entra.ca_bundle" in err.fix


def test_untrusted_graph_host_is_a_tls_error_too(entra):
    """The httpx side: Graph at a host whose certificate no configured CA signed."""
    other = Simulator(Tenant(seed=99)).start()
    source = GraphSource(dataclasses.replace(entra, graph_endpoint=other.url), tuning=FAST)
    # the TLS handshake fails before any token would be looked at: skip the token endpoint
    source.tokens.acquire = lambda claims_challenge=None: "not-a-real-token"  # type: ignore[method-assign]

    async def run() -> SourceError:
        try:
            with pytest.raises(SourceError) as err:
                await source.read(None)
            return err.value
        finally:
            await source.aclose()

    try:
        err = asyncio.run(run())
    finally:
        other.stop()
    assert err.kind == "tls" and "entra.ca_bundle" in err.fix


def test_ca_bundle_with_another_ca_does_not_trust_the_simulator(tmp_path, entra, read):
    bundle = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    err = fails(read, entra=dataclasses.replace(entra, ca_bundle=str(bundle)))
    assert err.kind == "tls"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_at_the_authority_is_a_network_error(entra, read):
    url = f"https://127.0.0.1:{_closed_port()}"
    err = fails(read, entra=dataclasses.replace(entra, authority_host=url))
    assert err.kind == "network"


def test_graph_going_away_mid_life_is_a_network_error(tenant, sim):
    entra = entra_for(sim)

    async def run() -> SourceError:
        async with GraphSource(entra, tuning=Tuning(backoff_initial_s=0.01, backoff_max_s=0.02, max_attempts=2)) as source:
            await source.read(None)  # token cached by msal
            sim.stop()  # connection refused from now on
            with pytest.raises(SourceError) as err:
                await source.read(None)
            return err.value

    err = asyncio.run(run())
    assert err.kind == "network" and "127.0.0.1" in str(err)


def test_dns_failure_is_a_network_error(entra, read):
    err = fails(read, entra=dataclasses.replace(entra, authority_host="https://no-such-host.invalid"), tuning=Tuning(backoff_initial_s=0.01, backoff_max_s=0.02, max_attempts=2))
    assert err.kind == "network"



def test_cycles_of_one_process_share_one_token(sim, entra):
    from syncd.source import read_graph

    first = read_graph(entra, None, 30, tuning=FAST)
    read_graph(entra, first.delta_links, 30, tuning=FAST)
    assert sim.token_request_count() == 1  # and one discovery: the msal application is shared
    assert sum(1 for m, target, _ in sim.token_requests if m == "GET" and "openid-configuration" in target) == 1


def test_a_changed_configuration_gets_its_own_token_source(entra):
    from syncd.source.auth import shared_token_source

    tokens = shared_token_source(entra, FAST)
    assert shared_token_source(dataclasses.replace(entra), FAST) is tokens  # equal configs
    other = shared_token_source(with_secret(entra, "rotated"), FAST)
    assert other is not tokens
    assert shared_token_source(entra, FAST) is not other


def test_a_prefetched_token_is_the_one_acquire_returns(sim, entra):
    from syncd.source.auth import TokenSource

    tokens = TokenSource(entra, FAST)
    tokens.prefetch()
    tokens.prefetch()  # already under way: no second fetch
    token = tokens.acquire()
    assert token and sim.token_request_count() == 1
    tokens.prefetch()  # a valid token in hand: nothing to fetch
    assert tokens.acquire() == token and sim.token_request_count() == 1
    tokens.close()


def test_a_prefetch_that_fails_fails_the_next_acquire_once(sim, entra):
    from syncd.source.auth import TokenSource

    tokens = TokenSource(with_secret(entra, "wrong"), FAST)
    tokens.prefetch()
    with pytest.raises(SourceError) as err:
        tokens.acquire()
    assert err.value.kind == "auth" and sim.token_request_count() == 1  # not asked twice
    with pytest.raises(SourceError):
        tokens.acquire()  # a later acquire asks again
    assert sim.token_request_count() == 2
    tokens.close()
