"""The token endpoint and OpenID discovery, driven by the real msal."""

from __future__ import annotations

import httpx
import msal
import pytest

from syncd.simulator import Simulator, Tenant

from .conftest import Certificate, GraphClient, fetch_token, trust


def app(sim: Simulator, session, credential, authority: str | None = None, client_id=None):
    return msal.ConfidentialClientApplication(
        client_id or sim.tenant.client_id, client_credential=credential,
        authority=authority or sim.authority, http_client=session, instance_discovery=False)


def test_msal_secret_gets_a_token_that_graph_accepts(simulator, msal_session):
    result = app(simulator, msal_session, simulator.tenant.client_secret
                 ).acquire_token_for_client([simulator.scope])
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3600
    http = GraphClient(simulator)
    http.http.headers["Authorization"] = "Bearer " + result["access_token"]
    assert http.get(f"/v1.0/servicePrincipals/{simulator.tenant.service_principal_id}").status_code == 200
    assert simulator.token_request_count() == 2  # msal's and GraphClient's own
    assert [r[1] for r in simulator.token_requests][0].endswith("/v2.0/.well-known/openid-configuration")


def test_authority_by_domain_works(simulator, msal_session):
    result = app(simulator, msal_session, simulator.tenant.client_secret,
                 authority=f"{simulator.url}/{simulator.tenant.domain}"
                 ).acquire_token_for_client([simulator.scope])
    assert "access_token" in result


@pytest.mark.parametrize(("case", "error", "code"), [
    ("wrong_secret", "invalid_client", 7000215),
    ("expired_secret", "invalid_client", 7000222),
    ("unknown_client", "unauthorized_client", 700016),
    ("wrong_scope", "invalid_resource", 500011),
])
def test_msal_errors_are_entra_errors(simulator, msal_session, case, error, code):
    t = simulator.tenant
    secret, client_id, scope = t.client_secret, None, simulator.scope
    if case == "wrong_secret":
        secret = "not-the-secret"
    elif case == "expired_secret":
        t.secret_expired = True
    elif case == "unknown_client":
        client_id = "11111111-2222-4333-8444-555555555555"
    elif case == "wrong_scope":
        scope = "https://graph.microsoft.com/.default"
    result = app(simulator, msal_session, secret, client_id=client_id).acquire_token_for_client([scope])
    assert result["error"] == error
    assert result["error_description"].startswith(f"AADSTS{code}:")
    assert result["error_codes"] == [code]
    assert t.client_secret not in str(result)


def test_unknown_tenant(simulator, msal_session):
    # msal fails at discovery; the raw token endpoint answers AADSTS90002 like Entra
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        app(simulator, msal_session, simulator.tenant.client_secret,
            authority=f"{simulator.url}/fabrikam.onmicrosoft.com")
    with httpx.Client(verify=trust(simulator), trust_env=False) as http:
        discovery = http.get(f"{simulator.url}/fabrikam.onmicrosoft.com/v2.0/.well-known/openid-configuration")
        r = http.post(f"{simulator.url}/fabrikam.onmicrosoft.com/oauth2/v2.0/token",
                      data={"grant_type": "client_credentials"})
    assert discovery.status_code == 400 and discovery.json()["error_codes"] == [90002]
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request" and r.json()["error_codes"] == [90002]


@pytest.mark.parametrize("with_chain", [False, True], ids=["RS256-x5t", "PS256-x5c"])
def test_certificate_credential(simulator, msal_session, rsa_certificate: Certificate, with_chain):
    simulator.tenant.add_certificate(rsa_certificate.cert_pem)
    credential = {"private_key": rsa_certificate.key_pem.decode(),
                  "thumbprint": rsa_certificate.thumbprint}
    if with_chain:
        credential["public_certificate"] = rsa_certificate.cert_pem.decode()
    result = app(simulator, msal_session, credential).acquire_token_for_client([simulator.scope])
    assert "access_token" in result, result


def test_unregistered_certificate_is_refused(simulator, msal_session, rsa_certificate):
    credential = {"private_key": rsa_certificate.key_pem.decode(),
                  "thumbprint": rsa_certificate.thumbprint}
    result = app(simulator, msal_session, credential).acquire_token_for_client([simulator.scope])
    assert result["error"] == "invalid_client" and result["error_codes"] == [700027]


def test_certificate_signed_by_another_key_is_refused(simulator, msal_session, rsa_certificate):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    simulator.tenant.add_certificate(rsa_certificate.cert_pem)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    credential = {"private_key": other.decode(), "thumbprint": rsa_certificate.thumbprint}
    result = app(simulator, msal_session, credential).acquire_token_for_client([simulator.scope])
    assert result["error_codes"] == [700027]
    assert "invalid signature" in result["error_description"]


def test_ecdsa_certificates_are_rejected_at_registration():
    import trustme
    with pytest.raises(ValueError, match="RSA"):
        Tenant().add_certificate(trustme.CA().cert_pem.bytes())


def test_missing_bearer_and_revoked_tokens_get_401(simulator, graph):
    url = f"/v1.0/servicePrincipals/{simulator.tenant.service_principal_id}"
    assert graph.get(url).status_code == 200
    r = graph.http.get(url, headers={"Authorization": ""})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    simulator.revoke_tokens()
    r = graph.get(url)
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in r.headers


def test_tokens_expire_after_their_lifetime():
    with Simulator(Tenant(), token_lifetime=0) as sim:  # expired as soon as issued
        body = fetch_token(sim).json()
        assert body["expires_in"] == 0
        graph = GraphClient(sim, body["access_token"])
        r = graph.get(f"/v1.0/servicePrincipals/{sim.tenant.service_principal_id}")
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
        graph.close()
