"""`syncd status`: enabled or not, the last cycle, the next run, counts and warnings."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .config import Config
from .report.model import outcome_in_words
from .store.audit import last_cycle
from .store.db import Store
from .store.local import group_count, user_counts

STALE_DELTA_DAYS = 6  # Graph drops delta tokens after about 7 days


def collect_status(store: Store, config: Config, today: date | None = None) -> dict[str, Any]:
    last = last_cycle(store)
    counts = user_counts(store)
    warnings: list[str] = list(config.warnings)
    today = today or datetime.now(UTC).date()
    warnings += expiry_warnings("the client secret", config.entra.client_secret_expires, today,
                                "create a new one and update entra.client_secret_file", expired_fix="create a new one")
    warnings.extend(certificate_warnings(config, today))
    if last is not None and last["status"] in ("failed", "partial", "held"):
        warnings.append(f"the last cycle {outcome_in_words(last['status'], last['errors'], 'latest')}")
    staged = store.staged_deactivation_count()
    if staged:
        warnings.append(f"{staged} deactivation(s) staged by the threshold wait for approval: syncd sync --approve-deactivations")
    last_full = store.get_meta("last_full_at")
    if store.delta_links() and last_full:
        age = datetime.now(UTC) - datetime.fromisoformat(last_full)
        if age > timedelta(days=STALE_DELTA_DAYS):
            warnings.append(f"the delta state is {age.days} days old: Graph may refuse it; the next cycle reads everything")
    backoff = store.get_meta("backoff")
    if backoff:
        info = json.loads(backoff)
        warnings.append(f"{info['failures']} cycles failed in a row: backing off, next try at {info['next_run']}")
    next_run = store.get_meta("next_run")
    if next_run and not backoff:
        overdue = datetime.now(UTC) - datetime.fromisoformat(next_run)
        if overdue > timedelta(minutes=config.sync.cycle_timeout_minutes + 5):
            warnings.append(f"the next run was due at {next_run}: is the daemon (syncd run) still running?")
    app_states = apps_status(store, config, today)
    warnings.extend(f"{a['name']}: {w}" for a in app_states for w in a["warnings"])
    return {
        "enabled": store.enabled,
        "enabled_at": store.get_meta("enabled_at"),
        "last_cycle": {k: last[k] for k in ("cycle_id", "status", "ended_at")} if last else None,
        "next_run": store.get_meta("next_run"),
        "users": {"active": counts.get("active", 0), "deactivated": counts.get("deactivated", 0)},
        "groups": group_count(store),
        "staged_deactivations": staged,
        "delta": {"tracked": sorted(store.delta_links()), "last_full_at": last_full},
        "warnings": warnings,
        "apps": app_states,
    }


def apps_status(store: Store, config: Config, today: date) -> list[dict[str, Any]]:
    """SPEC §7: each ``[[scim]]`` application's last push, the objects waiting for a retry
    (``pending``) and warnings (token expiry within 30 days, a last push that did not succeed)."""
    from .store import apps

    out: list[dict[str, Any]] = []
    for app in config.scim:
        last = apps.last_push(store.conn, app.name)
        pending = apps.pending(store.conn, app.name)
        warnings: list[str] = []
        expires = app.token_expires
        warnings += expiry_warnings("the SCIM token", expires, today, f"ask the application for a new one and put it in {app.token_file}")
        if last is not None and last["status"] in ("failed", "partial"):
            errors = [str(e) for e in last.get("errors") or []]  # type: ignore[attr-defined]
            warnings.append(f"the last push {outcome_in_words(str(last['status']), errors, str(last['cycle_id']))}")
        if pending:
            warnings.append(f"{pending} object(s) wait for a push that failed: retried in later cycles (backing off)")
        out.append({
            "name": app.name,
            "enabled": app.enabled,
            "last_push": {k: last[k] for k in ("cycle_id", "status", "ended_at", "requests")} if last else None,
            "pending": pending,
            "token_expires": expires.isoformat() if expires else None,
            "warnings": warnings,
        })
    return out


def certificate_warnings(config: Config, today: date) -> list[str]:
    """A certificate credential that expires within 30 days (its notAfter), or has expired."""
    cred = config.entra.credential
    if cred.kind != "certificate":
        return []
    pem = cred.certificate_pem
    if pem is None and cred.certificate_file:
        try:  # status does not load credentials; the certificate's dates are not secret
            with open(cred.certificate_file, "rb") as f:
                pem = f.read()
        except OSError:
            return []
    if not pem:
        return []
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        return [f"the certificate in {cred.certificate_file} cannot be read: {exc}"]
    if not certs:
        return []
    return expiry_warnings("the client certificate", certs[0].not_valid_after_utc.date(), today,
                           f"upload a new one to the app registration and replace {cred.certificate_file}")


def expiry_warnings(what: str, expires: date | None, today: date, fix: str, *, expired_fix: str | None = None) -> list[str]:
    """A credential that expires within 30 days, or has expired, with what to do."""
    if expires is None:
        return []
    left = (expires - today).days
    if left < 0:
        return [f"{what} expired on {expires.isoformat()}: {expired_fix or fix}"]
    if left <= 30:
        return [f"{what} expires on {expires.isoformat()} ({left} days): {fix}"]
    return []


def render_status(st: dict[str, Any]) -> str:
    last = st["last_cycle"]
    lines = [
        f"sync with Entra ID: {'enabled since ' + str(st['enabled_at']) if st['enabled'] else 'not enabled yet (no completed cycle)'}",
        f"last cycle:  {last['cycle_id'] + ' ' + last['status'] + ' at ' + last['ended_at'] if last else 'none'}",
        f"next run:    {st['next_run'] or 'not scheduled (the daemon is not running)'}",
        f"users:       {st['users']['active']} active, {st['users']['deactivated']} deactivated",
        f"groups:      {st['groups']}",
        f"delta state: {', '.join(st['delta']['tracked']) or 'none'} (last full read {st['delta']['last_full_at'] or 'never'})",
    ]
    for app in st.get("apps", []):
        push = app["last_push"]
        state = (f"last push {push['status']} at {push['ended_at']} ({push['requests']} requests)" if push
                 else "never pushed")
        lines.append(f"app {app['name']}: {state}, {app['pending']} pending"
                     + ("" if app["enabled"] else " (disabled)")
                     + (f", token expires {app['token_expires']}" if app["token_expires"] else ""))
    lines += [f"warning: {w}" for w in st["warnings"]]
    return "\n".join(lines)
