"""Access tokens for Graph: msal's ConfidentialClientApplication (client secret or certificate).

- Authority ``{authority_host}/{tenant_id}`` with ``instance_discovery=False`` *always*:
  with it msal talks only to the configured authority host (OIDC metadata + token
  endpoint). Discovery would add a call to login.microsoftonline.com (wrong for sovereign
  clouds behind egress firewalls, and impossible for the simulator) and only buys
  authority aliases for a shared user token cache, which an app-only in-memory cache
  never uses. The authority is operator configuration, https-only, TLS-verified.
- msal gets our own HTTP client (``TokenHttpClient``): a ``requests.Session`` with
  ``trust_env=False``, verifying with the system store + ``entra.ca_bundle``, timeouts, and
  retries of 429/5xx/connection errors, which msal does not do itself (msal's docs: a
  custom http_client owns retries). Retrying inside the client also keeps msal's
  throttle cache from replaying a stale 429/5xx to our retry.
- msal answers errors with dicts (AADSTS codes), not exceptions: ``auth_error`` turns
  them into ``AuthRefused`` with a fix per code. Messages never carry the
  secret or a token (``redact`` scrubs anything echoed back).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from ..config import EntraConfig
from ..errors import AuthRefused, NetworkFailed, ServerFailed, SourceError, Throttled, TlsFailed
from ..net import parse_retry_after
from ..tls import is_certificate_failure, proxy_for, requests_adapter, ssl_context, tls_error
from .tuning import DEFAULT_TUNING, Deadline, Retryable, Tuning

log = logging.getLogger("syncd.source.auth")

# token endpoint answers worth retrying (msal itself never retries them)
RETRYABLE_TOKEN_STATUS = frozenset({429, 500, 502, 503, 504})


def graph_scope(entra: EntraConfig) -> str:
    return f"{entra.graph_endpoint.rstrip('/')}/.default"


def authority_url(entra: EntraConfig) -> str:
    return f"{entra.authority_host.rstrip('/')}/{entra.tenant_id}"


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


# --------------------------------------------------------------------------- AADSTS codes

_APP_REG = "the app registration (Entra admin center > App registrations > your app)"
# code -> (what happened, the fix); {client_id}/{tenant_id}/{authority}/{scope} filled in
AADSTS_FIXES: dict[str, tuple[str, str]] = {
    "AADSTS7000215": (
        "the client secret is not valid for this application",
        f"copy the secret's Value (not its Secret ID) from Certificates & secrets of {_APP_REG} "
        "into the file named by entra.client_secret_file",
    ),
    "AADSTS7000222": (
        "the client secret has expired",
        f"create a new client secret in Certificates & secrets of {_APP_REG}, write it to "
        "entra.client_secret_file and update entra.client_secret_expires",
    ),
    "AADSTS700016": (
        "no application with client id {client_id} exists in tenant {tenant_id}",
        "set entra.client_id to the app registration's Application (client) ID, and check that "
        "entra.tenant_id is the tenant the application is registered in",
    ),
    "AADSTS90002": (
        "tenant {tenant_id} does not exist at {authority}",
        "set entra.tenant_id to the Directory (tenant) ID or a verified domain of the tenant, "
        "and check entra.cloud / entra.authority_host",
    ),
    "AADSTS900023": (
        "tenant {tenant_id} is not a valid tenant identifier",
        "set entra.tenant_id to the Directory (tenant) ID (a GUID) or a verified domain",
    ),
    "AADSTS700027": (
        "the certificate was refused (not registered on the application, or the signature "
        "does not verify)",
        f"upload the certificate (public part) of entra.client_certificate_file to "
        f"Certificates & secrets of {_APP_REG}",
    ),
    "AADSTS700024": (
        "the client assertion is outside its validity window",
        "check this machine's clock (NTP)",
    ),
    "AADSTS7000112": (
        "the application is disabled",
        "enable the application's enterprise application (Properties > Enabled for users to sign-in)",
    ),
    "AADSTS7000229": (
        "the application has no service principal in tenant {tenant_id}",
        "grant admin consent for the application in tenant {tenant_id}, which creates it",
    ),
    "AADSTS500011": (
        "the resource {scope} is not known in this tenant",
        "check entra.cloud / entra.graph_endpoint",
    ),
    "AADSTS70011": (
        "the scope {scope} is not valid",
        "check entra.cloud / entra.graph_endpoint",
    ),
    "AADSTS7000218": (
        "the request carried no client credential",
        "configure entra.client_secret_file or entra.client_certificate_file",
    ),
}

_CODE = re.compile(r"AADSTS\d+")


def auth_error(result: dict[str, Any], entra: EntraConfig, secrets: list[str]) -> SourceError:
    """An msal error dict -> AuthRefused with the fix for its AADSTS code."""
    description = str(result.get("error_description") or "")
    codes = _CODE.findall(description) or [f"AADSTS{c}" for c in result.get("error_codes") or []]
    values = {
        "client_id": entra.client_id,
        "tenant_id": entra.tenant_id,
        "authority": entra.authority_host,
        "scope": graph_scope(entra),
    }
    for code in codes:
        if code in AADSTS_FIXES:
            what, fix = AADSTS_FIXES[code]
            return AuthRefused(f"token request refused ({code}): {what.format(**values)}", fix=fix.format(**values))
    error = str(result.get("error") or "unknown_error")
    first_line = description.splitlines()[0] if description else ""
    detail = redact(first_line, secrets)[:300]
    fix = {
        "invalid_client": "check entra.client_id and the configured credential",
        "unauthorized_client": "check entra.client_id and that the application is enabled",
        "invalid_request": "check entra.tenant_id, entra.client_id and the credential",
        "invalid_scope": "check entra.cloud / entra.graph_endpoint",
    }.get(error, "check entra.tenant_id, entra.client_id and the credential")
    return AuthRefused(f"token request refused ({error}): {detail}".rstrip(": "), fix=fix)


def discovery_error(exc: ValueError, entra: EntraConfig, secrets: list[str]) -> SourceError:
    """msal raises ValueError when the tenant's OIDC metadata cannot be read (4xx)."""
    text = str(exc)
    codes = _CODE.findall(text)
    # msal replaces the 4xx answer of the tenant's OIDC document (AADSTS90002 for an
    # unknown tenant) with "Unable to get authority configuration": same meaning
    if "AADSTS90002" in codes or "Unable to get authority configuration" in text or "HTTP status: 4" in text:
        return auth_error({"error": "invalid_tenant", "error_description": "AADSTS90002"}, entra, secrets)
    if codes:
        return auth_error({"error": "invalid_request", "error_description": text}, entra, secrets)
    return AuthRefused(
        f"cannot read the OpenID configuration of {authority_url(entra)}: {redact(text, secrets)[:300]}",
        fix="check entra.tenant_id and entra.cloud / entra.authority_host",
    )


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class CertificateCredential:
    private_key_pem: str
    certificate_pem: str
    thumbprint_sha1: str
    not_after: datetime


def load_certificate(pem: bytes, source: str) -> CertificateCredential:
    """Split a PEM holding an RSA key + certificate into what msal needs (x5t + x5c)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    fix = "entra.client_certificate_file must hold an unencrypted RSA private key and its certificate (PEM)"
    try:
        certs = x509.load_pem_x509_certificates(pem)
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise AuthRefused(f"{source}: cannot read the key and certificate ({type(exc).__name__})", fix=fix) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthRefused(f"{source}: the private key is not RSA (Entra needs RSA for client assertions)", fix=fix)
    def spki(public_key: Any) -> bytes:
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    leaf = next((c for c in certs if spki(c.public_key()) == spki(key.public_key())), None)
    if leaf is None:
        raise AuthRefused(f"{source}: no certificate in the file matches the private key", fix=fix)
    not_after = leaf.not_valid_after_utc
    if not_after <= datetime.now(UTC):
        raise AuthRefused(
            f"{source}: the certificate expired on {not_after:%Y-%m-%d}",
            fix=f"create a new certificate, upload it to Certificates & secrets of {_APP_REG}, and replace the file",
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return CertificateCredential(
        private_key_pem=key_pem,
        certificate_pem=leaf.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        thumbprint_sha1=leaf.fingerprint(hashes.SHA1()).hex().upper(),
        not_after=not_after,
    )


# --------------------------------------------------------------------------- HTTP for msal


class TokenHttpClient:
    """msal's HTTP client: our TLS trust, no env overrides, timeouts, and retries."""

    def __init__(self, entra: EntraConfig, tuning: Tuning, deadline: Callable[[], Deadline]) -> None:
        import requests

        self._tuning = tuning
        self._deadline = deadline
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE must not override our trust
        self.session.verify = True  # with the adapter's context: see tls.requests_adapter
        self.session.mount("https://", requests_adapter(ssl_context(entra.ca_bundle)))
        proxy = proxy_for(entra.authority_host)
        if proxy:
            self.session.proxies = {"https": proxy}
        self.requests_sent = 0

    def post(self, url: str, **kwargs: Any) -> Any:
        return self._send("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._send("GET", url, **kwargs)

    def close(self) -> None:
        self.session.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> Any:
        """One msal request, retried (tenacity) on 429/5xx and connection failures."""
        from tenacity import RetryCallState, Retrying, retry_if_exception_type

        kwargs.setdefault("timeout", (self._tuning.connect_timeout_s, self._tuning.read_timeout_s))
        kwargs["verify"] = True  # never off, whatever a caller passes

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, Retryable) and exc.retry_after is not None:
                return exc.retry_after
            return self._tuning.backoff(state.attempt_number)

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            refused = isinstance(exc, Retryable) and exc.retry_after is not None and exc.retry_after > self._tuning.token_retry_after_max_s
            return refused or state.attempt_number >= self._tuning.max_attempts or not self._deadline().allows(state.upcoming_sleep)

        retrying = Retrying(
            retry=retry_if_exception_type(Retryable),
            wait=wait,
            stop=stop,
            reraise=True,
            sleep=time.sleep,
            before_sleep=lambda state: log.info(
                "token endpoint: %s (attempt %d); retrying in %.1fs",
                state.outcome.exception() if state.outcome else "?", state.attempt_number, state.upcoming_sleep,
            ),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_once(method, url, attempt.retry_state.attempt_number, **kwargs)
        except Retryable as exc:
            raise exc.final from None
        raise AssertionError("unreachable")

    def _send_once(self, method: str, url: str, attempt: int, **kwargs: Any) -> Any:
        import requests

        host = urlparse(url).hostname or url
        self.requests_sent += 1
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.SSLError as exc:
            if is_certificate_failure(exc):
                raise tls_error(host, exc) from None
            raise TlsFailed(f"TLS handshake with {host} failed", fix="check entra.authority_host and any proxy in between") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            reason = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "connection failed"
            raise Retryable(NetworkFailed(
                f"cannot reach the token endpoint {host}: {reason} after {attempt} attempts",
                fix="check DNS, the network path and any proxy to entra.authority_host",
            )) from None
        if response.status_code not in RETRYABLE_TOKEN_STATUS:
            return response
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        response.close()
        raise Retryable((Throttled if response.status_code == 429 else ServerFailed)(
            f"token endpoint {host}{urlparse(url).path} answered {response.status_code} after {attempt} attempts",
            fix="Entra ID is throttling or unavailable: the next cycle retries",
        ), retry_after)


# --------------------------------------------------------------------------- the token source


def _reuse_for(expires_in: Any) -> float:
    """Seconds a token with ``expires_in`` left is reused without asking msal: half of that,
    and never into its last 5 minutes (from where msal itself renews)."""
    try:
        left = float(expires_in)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, min(left / 2, left - 300))


class TokenSource:
    """Client-credentials tokens for Graph from msal; thread-safe, cached by msal.

    Synchronous (msal is); the async side calls it through ``asyncio.to_thread``, or takes
    ``current()`` without a thread hop while the last token is far from expiry (every page
    request asks: a hop each delays the request behind other work).
    """

    def __init__(self, entra: EntraConfig, tuning: Tuning = DEFAULT_TUNING) -> None:
        self.entra = entra
        self.scope = graph_scope(entra)
        self.deadline = Deadline.unbounded()
        self._tuning = tuning
        self._lock = threading.Lock()
        self._app: Any = None
        self._http: TokenHttpClient | None = None
        self._secrets = [entra.credential.secret or ""]
        self.tokens_fetched = 0
        # the last token msal gave, and until when (monotonic) it is handed out without asking
        # msal again: in memory only, like msal's own cache
        self._current: tuple[str, float] | None = None
        self._pending: Future[str] | None = None  # prefetch()'s token

    @property
    def requests_sent(self) -> int:
        return self._http.requests_sent if self._http else 0

    def _build_app(self) -> Any:
        import msal

        credential = self.entra.credential
        if credential.kind == "certificate":
            if not credential.certificate_pem:
                raise AuthRefused("no certificate loaded", fix="set entra.client_certificate_file")
            cert = load_certificate(credential.certificate_pem, credential.source)
            client_credential: Any = {
                "private_key": cert.private_key_pem,
                "thumbprint": cert.thumbprint_sha1,
                "public_certificate": cert.certificate_pem,
            }
        else:
            if not credential.secret:
                raise AuthRefused("no client secret loaded", fix="set entra.client_secret_file")
            client_credential = credential.secret
        self._http = TokenHttpClient(self.entra, self._tuning, lambda: self.deadline)
        try:
            return msal.ConfidentialClientApplication(
                self.entra.client_id,
                client_credential=client_credential,
                authority=authority_url(self.entra),
                http_client=self._http,
                instance_discovery=False,
                token_cache=msal.TokenCache(),  # in memory: app tokens last ~1 h anyway
            )
        except ValueError as exc:
            raise discovery_error(exc, self.entra, self._secrets) from None

    def prefetch(self) -> None:
        """Fetch a token in a thread now (msal's import, its discovery and the token request
        overlap the caller's start-up); the next ``acquire`` waits for it, error included."""
        with self._lock:
            if self._pending is not None or self.current() is not None:
                return
            pending: Future[str] = Future()
            self._pending = pending

        def fetch() -> None:
            try:
                pending.set_result(self._acquire(None))
            except BaseException as exc:  # noqa: BLE001 - handed to the next acquire()
                pending.set_exception(exc)

        # what the thread imports (msal; tenacity for its retries) is imported here, before the
        # caller's own imports: in the thread it shared the CPU with them, and the token
        # endpoint's first request left late
        import msal  # noqa: F401
        import tenacity  # noqa: F401

        threading.Thread(target=fetch, name="syncd-token", daemon=True).start()

    def acquire(self, claims_challenge: str | None = None) -> str:
        """A valid access token, from msal's cache when it has one."""
        with self._lock:  # taken as prefetch() set it; waited for outside (its thread needs the lock)
            pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # a refused credential fails here, once, as it failed there
        return self._acquire(claims_challenge)

    def _acquire(self, claims_challenge: str | None) -> str:
        with self._lock:
            if self._app is None:
                self._app = self._build_app()
            try:
                result = self._app.acquire_token_for_client([self.scope], claims_challenge=claims_challenge)
            except ValueError as exc:  # e.g. an unreadable OIDC document
                raise discovery_error(exc, self.entra, self._secrets) from None
            if not result or "access_token" not in result:
                raise auth_error(result or {}, self.entra, self._secrets)
            if result.get("token_source") == "identity_provider":
                self.tokens_fetched += 1
                log.debug("fetched a Graph token (expires in %ss)", result.get("expires_in"))
            token = str(result["access_token"])
            self._current = (token, time.monotonic() + _reuse_for(result.get("expires_in")))
            return token

    def current(self) -> str | None:
        """The last token, while it has well over its remaining life left; else None."""
        current = self._current
        if current is None or time.monotonic() >= current[1]:
            return None
        return current[0]

    def refresh(self, rejected_token: str) -> str:
        """A fresh token after Graph refused ``rejected_token`` (expired/revoked).

        Only drops the cache when it still holds the refused token, so concurrent 401s
        on one token cost one token request, not one each.
        """
        with self._lock:
            self._current = None
            if self._app is not None:
                cached = self._app.acquire_token_for_client([self.scope])
                if cached.get("access_token") == rejected_token:
                    self._app.remove_tokens_for_client()
        return self._acquire(None)

    def close(self) -> None:
        if self._http:
            self._http.close()


_shared: tuple[tuple[EntraConfig, Tuning], TokenSource] | None = None
_shared_lock = threading.Lock()


def shared_token_source(entra: EntraConfig, tuning: Tuning = DEFAULT_TUNING) -> TokenSource:
    """The process's TokenSource for this configuration.

    One msal application for every cycle of a process: the daemon asks for the OIDC
    discovery and a token once an hour or so, not at every cycle, and the CLI can start
    fetching before it has imported the rest (``prefetch``). A changed configuration (a
    reloaded config, a rotated secret) gets a new one.
    """
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != (entra, tuning):
            _shared = ((entra, tuning), TokenSource(entra, tuning))
        return _shared[1]
