"""`syncd test-connection` for SCIM applications (SPEC §7): the token is accepted,
ServiceProviderConfig is read, a filter query is answered. One check per line, each failure
with its fix; the token is never shown."""

from __future__ import annotations

from ..config import ScimApp
from ..errors import SyncdError
from ..net import Check
from .scim import AuthRefused, Capabilities, Options, ScimClient, ScimError

# a test answers within seconds or says why: no long back-off
CHECK_OPTIONS = Options(timeout_s=15.0, connect_timeout_s=10.0, max_attempts=2, backoff_base_s=0.5, backoff_max_s=1.0,
                        budget_s=45.0, retry_after_max_s=5.0)
PROBE = "syncd-test-connection@invalid"  # a userName nobody has: the filter's answer is read, nothing changed


def check_app(app: ScimApp, *, options: Options = CHECK_OPTIONS) -> list[Check]:
    """The checks of one application, in order; a failed one skips those after it."""
    label = f"SCIM application {app.name}"
    if not app.enabled:
        return [Check(label, None, "disabled (scim.enabled = false): not checked")]
    try:
        token = app.read_token()
    except SyncdError as exc:
        return [Check(f"{label}: token", False, str(exc), f"put the application's token in {app.token_file}")]
    checks: list[Check] = []
    try:
        with ScimClient(app, token, options) as client:
            try:
                caps = client.capabilities()
            except ScimError as exc:
                checks.append(Check(f"{label}: token and ServiceProviderConfig", False, _said(app, exc), _fix(app, exc)))
                return checks
            checks.append(Check(f"{label}: token and ServiceProviderConfig", True,
                                   f"accepted at {app.base_url}; {_capabilities(caps)}"))
            if not caps.filter:
                checks.append(Check(f"{label}: filter query", None,
                                       "the application announces no filter: syncd reads its listing instead"))
                return checks
            try:
                client.find("Users", "userName", PROBE)
            except ScimError as exc:
                checks.append(Check(f"{label}: filter query", False, _said(app, exc), _fix(app, exc)))
                return checks
            checks.append(Check(f"{label}: filter query", True, 'GET /Users?filter=userName eq "..." answered'))
    except SyncdError as exc:  # (a ca_bundle that cannot be read, ...)
        checks.append(Check(label, False, str(exc), f"check the [[scim]] table named {app.name}"))
    return checks


def _said(app: ScimApp, exc: ScimError) -> str:
    text = str(exc)
    return text if text.startswith(f"{app.name}:") else f"{app.name}: {text}"


def _fix(app: ScimApp, exc: ScimError) -> str:
    if isinstance(exc, AuthRefused):
        return f"put a new token from the application in {app.token_file} (scim.{app.name}.token_file)"
    if exc.status is None:
        return (f"check scim.{app.name}.base_url ({app.base_url}): is the application up and reachable from this host"
                + (", and its certificate trusted (scim.ca_bundle)?" if app.base_url.startswith("https:") else "?"))
    if exc.status == 404:
        return f"check scim.{app.name}.base_url ({app.base_url}): it should end with the SCIM base path (such as /scim/v2)"
    return f"see the application's answer above; check scim.{app.name}.base_url"


def _capabilities(caps: Capabilities) -> str:
    parts = ["PATCH" if caps.patch else "no PATCH (PUT instead)"]
    parts.append(f"Bulk (up to {caps.bulk_max_operations} operations)" if caps.bulk else "no Bulk")
    parts.append("filter" if caps.filter else "no filter")
    return ", ".join(parts)
