"""TLS trust and proxies for every HTTP stack (requests for msal, httpx for Graph and for
the SCIM applications).

``entra.ca_bundle`` (and a ``[[scim]]`` table's ``ca_bundle``) holds *extra* trusted CAs (a TLS-inspecting proxy, the simulator): we
trust the system store (certifi's where there is none) plus those. Both clients are built with
``trust_env=False`` because this kind of machine sets ``REQUESTS_CA_BUNDLE`` /
``CURL_CA_BUNDLE``, which requests lets override ``verify=``: the configuration must win.
Proxies from the environment are still honoured, explicitly, by ``proxy_for``.
Verification is never turned off: there is no knob for it.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import ssl
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import certifi

from .errors import SourceError, TlsFailed

CA_BUNDLE_FIX = (
    "if a proxy or private CA re-signs TLS, put its CA certificate (PEM) in the file named by "
    "entra.ca_bundle"
)


def _base_store() -> str:
    """The system CA file when there is one (it carries any CA the admin installed), else certifi."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        # a stale or bogus $SSL_CERT_FILE (no PEM in it) must not break entra.ca_bundle
        if candidate and os.path.isfile(candidate) and _holds_pem(candidate):
            return candidate
    return certifi.where()


def _holds_pem(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return b"-----BEGIN CERTIFICATE-----" in f.read()
    except OSError:
        return False


class _BadBundle(Exception):
    """A CA bundle that cannot serve: what is wrong, and the fix (``{key}``: the setting,
    which ``ssl_context`` names)."""

    def __init__(self, what: str, fix: str = "{key} must be a PEM file of CA certificates") -> None:
        super().__init__(what)
        self.fix = fix


def _read_extra(ca_bundle: str) -> bytes:
    try:
        pem = Path(ca_bundle).read_bytes()
    except OSError as exc:
        raise _BadBundle(f"cannot be read ({exc.strerror})", "check the path and its permissions") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise _BadBundle("holds no PEM certificate")
    return pem


def ssl_context(ca_bundle: str | None, key: str = "entra.ca_bundle") -> ssl.SSLContext:
    """Verifying context: the system (or certifi) store + the configured extra CAs (``key``
    names the setting in errors).

    Shared by msal's requests session and the httpx clients, and cached per process (per
    bundle, whichever setting names it): parsing a CA store is too slow to pay per
    connection or per cycle (BENCHMARKS.md).
    """
    stamp = None
    if ca_bundle:
        with contextlib.suppress(OSError):
            stamp = os.stat(ca_bundle).st_mtime_ns
    try:
        return _cached_context(ca_bundle, stamp)
    except _BadBundle as bad:
        raise TlsFailed(f"{key} {ca_bundle} {bad}", fix=bad.fix.format(key=key)) from None


@functools.lru_cache(maxsize=8)
def _cached_context(ca_bundle: str | None, stamp: int | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=_base_store())
    if ca_bundle:
        pem = _read_extra(ca_bundle)
        try:
            ctx.load_verify_locations(cadata=pem.decode("ascii", errors="replace"))
        except ssl.SSLError as exc:
            raise _BadBundle(f"is not a valid PEM CA bundle ({exc.reason})") from None
    return ctx


def requests_adapter(ctx: ssl.SSLContext) -> Any:
    """A requests transport adapter that verifies with ``ctx`` (session.verify stays True).

    requests >= 2.32 uses a pool manager's ``ssl_context`` as is when ``verify`` is True,
    so no CA file is re-parsed per connection and no env variable can replace it.
    """
    from requests.adapters import HTTPAdapter

    class _ContextAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = ctx
            super().init_poolmanager(*args, **kwargs)

    return _ContextAdapter()


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY / ALL_PROXY, NO_PROXY), if any.

    ``trust_env=False`` switches off the env CA overrides *and* env proxies; we want the
    first off but the second on, so proxies are resolved here and passed explicitly, for
    msal's session and the Graph client alike. A loopback host (127.0.0.0/8, ::1,
    localhost: the simulator, a local test tenant) never goes through a proxy, whatever
    NO_PROXY says: a proxy elsewhere cannot reach this machine's loopback.
    """
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if is_loopback(host):
        return None
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]
        return None
    if parsed.scheme == "http":
        return proxies.get("http") or proxies.get("all")
    return proxies.get("https") or proxies.get("all")


def is_loopback(host: str) -> bool:
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_certificate_failure(exc: BaseException) -> bool:
    """Whether ``exc`` or anything it wraps is a failed certificate verification.

    httpx chains the ssl error as ``__cause__``; requests/urllib3 keep it in ``args``.
    """
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(current) or "certificate verify failed" in str(current):
            return True
        pending.extend([current.__cause__, current.__context__, *current.args])
        pending.append(getattr(current, "reason", None))
    return False


def tls_error(host: str, exc: BaseException) -> SourceError:
    reason = getattr(exc, "verify_message", None) or "certificate verify failed"
    return TlsFailed(
        f"TLS: the certificate of {host} is not trusted ({reason})",
        fix=CA_BUNDLE_FIX,
    )
