"""The Entra v2.0 side: OpenID discovery, the client-credentials token endpoint, access tokens.

Errors carry Entra's shape and AADSTS codes so clients can be tested on the messages they
will really see. Access tokens are opaque random strings remembered with their expiry.
Secrets and tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .odata import loads, new_request_id
from .tenant import Tenant

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 300  # seconds Entra tolerates on assertion times


class TokenError(Exception):
    """An error answer from the token endpoint."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"{status} {error} AADSTS{code}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        trace, correlation = new_request_id(), new_request_id()
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (f"AADSTS{self.code}: {self.description} Trace ID: {trace} "
                                  f"Correlation ID: {correlation} Timestamp: {stamp}"),
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }


def resolve_tenant(tenant: Tenant, segment: str) -> bool:
    return segment.lower() in (tenant.tenant_id.lower(), tenant.domain.lower())


def unknown_tenant(segment: str) -> TokenError:
    return TokenError(400, "invalid_request", 90002,
                      f"Tenant '{segment}' not found. Check to make sure you have the correct "
                      "tenant ID and are signing into the correct cloud.")


def openid_configuration(base_url: str, tenant: Tenant) -> dict[str, Any]:
    root = f"{base_url}/{tenant.tenant_id}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                  "client_secret_basic"],
        "jwks_uri": f"{base_url}/{tenant.tenant_id}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{root}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base_url}/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid"],
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": base_url.split("://", 1)[1],
        "rbac_url": "https://pas.windows.net",
    }


class AccessTokens:
    """Issued bearer tokens: opaque strings -> expiry (monotonic seconds)."""

    def __init__(self, lifetime: int) -> None:
        self.lifetime = lifetime
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = "sim." + secrets.token_urlsafe(48)
        with self._lock:
            self._expiry[token] = time.monotonic() + self.lifetime
        return token

    def check(self, token: str) -> str | None:
        """None if valid, else why not (the Graph error message)."""
        with self._lock:
            expiry = self._expiry.get(token)
        if expiry is None:
            return "Access token validation failure. Invalid audience or the token was revoked."
        if time.monotonic() >= expiry:
            return "Lifetime validation failed, the token is expired."
        return None

    def revoke_all(self) -> None:
        with self._lock:
            self._expiry.clear()


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _find_certificate(tenant: Tenant, header: dict[str, Any]) -> x509.Certificate | None:
    thumbprint = header.get("x5t")
    if isinstance(thumbprint, str):
        cert = tenant.certificates.get(_b64url_decode(thumbprint).hex().upper())
        if cert is not None:
            return cert
    sha256 = header.get("x5t#S256")
    if isinstance(sha256, str):
        wanted = _b64url_decode(sha256)
        for cert in tenant.certificates.values():
            if cert.fingerprint(hashes.SHA256()) == wanted:
                return cert
    chain = header.get("x5c")
    if isinstance(chain, list) and chain and isinstance(chain[0], str):
        leaf = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
        return tenant.certificates.get(leaf.fingerprint(hashes.SHA1()).hex().upper())  # noqa: S303
    return None


def verify_client_assertion(tenant: Tenant, assertion: str, token_url: str) -> None:
    """Check a private_key_jwt client assertion as Entra does; raise TokenError if refused."""
    try:
        head_b64, body_b64, sig_b64 = assertion.split(".")
        header = loads(_b64url_decode(head_b64))
        claims = loads(_b64url_decode(body_b64))
        signature = _b64url_decode(sig_b64)
    except (ValueError, TypeError):
        raise TokenError(400, "invalid_request", 50027,
                         "JWT token is invalid or malformed.") from None
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        raise TokenError(401, "invalid_client", 5002738,
                         f"Invalid JWT token. '{alg}' is not a supported signature algorithm.")
    cert = _find_certificate(tenant, header)
    if cert is None:
        raise TokenError(401, "invalid_client", 700027,
                         "The certificate with identifier used to sign the client assertion is "
                         "not registered on application. [Reason - The key was not found.]")
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    pad: padding.AsymmetricPadding = (
        padding.PKCS1v15() if alg == "RS256"
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH))
    try:
        key.verify(signature, f"{head_b64}.{body_b64}".encode(), pad, hashes.SHA256())
    except InvalidSignature:
        raise TokenError(401, "invalid_client", 700027,
                         "Client assertion contains an invalid signature.") from None
    if claims.get("iss") != tenant.client_id or claims.get("sub") != tenant.client_id:
        raise TokenError(401, "invalid_client", 700021,
                         "Client assertion application identifier doesn't match 'client_id' "
                         "parameter.")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(a, str) and a.lower() == token_url.lower() for a in audiences):
        raise TokenError(401, "invalid_client", 700212,
                         f"The audience claim value is invalid '{audience}'.")
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or exp < now - CLOCK_SKEW or nbf > now + CLOCK_SKEW:
        raise TokenError(401, "invalid_client", 700024,
                         "Client assertion is not within its valid time range.")


def token_request(tenant: Tenant, tokens: AccessTokens, tenant_segment: str,
                  form: dict[str, str], base_url: str) -> dict[str, Any]:
    """The client-credentials grant; returns the success body or raises TokenError."""
    if not resolve_tenant(tenant, tenant_segment):
        raise unknown_tenant(tenant_segment)
    if form.get("grant_type") != "client_credentials":
        raise TokenError(400, "unsupported_grant_type", 70003,
                         "The app requested an unsupported grant type "
                         f"'{form.get('grant_type')}'.")
    client_id = form.get("client_id", "")
    if client_id.lower() != tenant.client_id:
        raise TokenError(400, "unauthorized_client", 700016,
                         f"Application with identifier '{client_id}' was not found in the "
                         f"directory '{tenant.domain}'. This can happen if the application has "
                         "not been installed by the administrator of the tenant or consented "
                         "to by any user in the tenant. You may have sent your authentication "
                         "request to the wrong tenant.")
    token_url = f"{base_url}/{tenant.tenant_id}/oauth2/v2.0/token"
    if "client_assertion" in form:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenError(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
        verify_client_assertion(tenant, form["client_assertion"], token_url)
    elif "client_secret" in form:
        if not hmac.compare_digest(form["client_secret"].encode(), tenant.client_secret.encode()):
            raise TokenError(401, "invalid_client", 7000215,
                             "Invalid client secret provided. Ensure the secret being sent in "
                             "the request is the client secret value, not the client secret ID, "
                             f"for a secret added to app '{tenant.client_id}'.")
        if tenant.secret_expired:
            raise TokenError(401, "invalid_client", 7000222,
                             f"The provided client secret keys for app '{tenant.client_id}' are "
                             "expired. Visit the Azure portal to create new keys for your app: "
                             "https://aka.ms/NewClientSecret, or consider using certificate "
                             "credentials for added security: https://aka.ms/certCreds.")
    else:
        raise TokenError(401, "invalid_client", 7000218,
                         "The request body must contain the following parameter: "
                         "'client_assertion' or 'client_secret'.")
    scope = form.get("scope", "")
    if not scope.endswith("/.default"):
        raise TokenError(400, "invalid_scope", 1002012,
                         f"The provided value for scope {scope} is not valid. Client credential "
                         "flows must have a scope value with /.default suffixed to the resource "
                         "identifier (application ID URI).")
    resource = scope[: -len("/.default")].rstrip("/")
    if resource.lower() != base_url.lower():
        raise TokenError(400, "invalid_resource", 500011,
                         f"The resource principal named {resource} was not found in the tenant "
                         f"named {tenant.domain}. This can happen if the application has not "
                         "been installed by the administrator of the tenant or consented to by "
                         "any user in the tenant. You might have sent your authentication "
                         "request to the wrong tenant.")
    return {"token_type": "Bearer", "expires_in": tokens.lifetime,
            "ext_expires_in": tokens.lifetime, "access_token": tokens.issue()}
