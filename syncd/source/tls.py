"""TLS trust and proxies for both HTTP stacks (requests for msal, httpx for Graph).

``entra.ca_bundle`` holds *extra* trusted CAs (a TLS-inspecting proxy, the simulator): we
trust certifi's store, the system store, and those. Both clients are built with
``trust_env=False`` because this kind of machine sets ``REQUESTS_CA_BUNDLE`` /
``CURL_CA_BUNDLE``, which requests lets override ``verify=``: the configuration must win.
Proxies from the environment are still honoured, explicitly, by ``proxy_for``.
Verification is never turned off: there is no knob for it.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import certifi

from ..errors import SourceError

CA_BUNDLE_FIX = (
    "if a proxy or private CA re-signs TLS, put its CA certificate (PEM) in the file named by "
    "entra.ca_bundle"
)


def _system_ca_file() -> str | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _read_extra(ca_bundle: str) -> bytes:
    try:
        pem = Path(ca_bundle).read_bytes()
    except OSError as exc:
        raise SourceError(
            f"entra.ca_bundle {ca_bundle} cannot be read ({exc.strerror})",
            kind="tls",
            fix="check the path and its permissions",
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise SourceError(
            f"entra.ca_bundle {ca_bundle} holds no PEM certificate",
            kind="tls",
            fix="entra.ca_bundle must be a PEM file of CA certificates",
        )
    return pem


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verifying context: certifi + system store + the configured extra CAs."""
    ctx = ssl.create_default_context(cafile=certifi.where())
    system = _system_ca_file()
    if system:
        ctx.load_verify_locations(cafile=system)
    if ca_bundle:
        pem = _read_extra(ca_bundle)
        try:
            ctx.load_verify_locations(cadata=pem.decode("ascii", errors="replace"))
        except ssl.SSLError as exc:
            raise SourceError(
                f"entra.ca_bundle {ca_bundle} is not a valid PEM CA bundle ({exc.reason})",
                kind="tls",
                fix="entra.ca_bundle must be a PEM file of CA certificates",
            ) from None
    return ctx


class CombinedCaFile:
    """A private PEM file (certifi + system + extra) for requests, which wants a path.

    Only built when ``ca_bundle`` is set; otherwise requests uses certifi (``verify=True``).
    """

    def __init__(self, ca_bundle: str | None) -> None:
        self.path: str | None = None
        if not ca_bundle:
            return
        parts = [Path(certifi.where()).read_bytes()]
        system = _system_ca_file()
        if system:
            parts.append(Path(system).read_bytes())
        parts.append(_read_extra(ca_bundle))
        fd, path = tempfile.mkstemp(prefix="syncd-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as out:
            out.write(b"\n".join(parts))
        self.path = path

    @property
    def verify(self) -> str | bool:
        return self.path or True

    def remove(self) -> None:
        if self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY / NO_PROXY), if any.

    ``trust_env=False`` switches off the env CA overrides *and* env proxies; we want the
    first off but the second on, so proxies are resolved here and passed explicitly.
    """
    host = urlparse(url).hostname or ""
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    return proxies.get("https") or proxies.get("all")


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
    return SourceError(
        f"TLS: the certificate of {host} is not trusted ({reason})",
        kind="tls",
        fix=CA_BUNDLE_FIX,
    )
