"""Operator commands: `run` (the daemon), `status`, `check-config`, `test-connection`, `explain`."""

from __future__ import annotations

import sys

import click

from .app import _config_option, _load_config, _open_store, _print_json, cli, json_option


@cli.command(short_help="Enabled or not, last cycle, next run, counts, warnings.", epilog="Exit 0 whatever the last cycle did: the warnings say it; a missing store is exit 2.")
@_config_option
@json_option("the status (enabled, last_cycle, next_run, users, groups, warnings, ...)")
def status(as_json: bool) -> None:
    """Enabled or not, the last cycle, the next run, counts, and warnings with what to do."""
    from ..status import collect_status, render_status

    store, cfg = _open_store()
    with store:
        st = collect_status(store, cfg)
    if as_json:
        _print_json(st)
    else:
        click.echo(render_status(st))


@cli.command("check-config", short_help="Validate the configuration and show what it resolved.", epilog=(
    "A relative entra.client_secret_file names a systemd credential: inside a unit with LoadCredential= it is "
    "read from $CREDENTIALS_DIRECTORY, elsewhere beside the configuration file (the file LoadCredential= loads)."
))
@_config_option
@json_option("what the configuration resolved to")
def check_config(as_json: bool) -> None:
    """Validate the configuration (every problem, one line each, exit 2), read the credential,
    check the store's path, and print what it all resolved to as TOML (never the secret)."""
    from pathlib import Path

    from ..config import as_toml, describe, placeholder_warnings
    from ..errors import ConfigError
    from ..store import access

    cfg = _load_config()
    for warning in placeholder_warnings(cfg):
        click.echo(f"warning: {warning}", err=True)
    store = Path(cfg.store_path)
    problem = access.write_problem(store)
    if problem:
        raise ConfigError(f"store.path: {problem}")
    if as_json:
        resolved = describe(cfg)
        resolved["store"]["state"] = access.describe(store)
        _print_json(resolved)
    else:
        click.echo(as_toml(cfg) + f"# store: {access.describe(store)}")


@cli.command(short_help="The daemon, for systemd: a cycle now, then every interval.", epilog=(
    "Runs in the foreground until SIGTERM; SIGHUP re-reads the configuration. Under systemd (Type=notify) it reports "
    "READY, a one-line STATUS after each cycle, and pings the watchdog. Exit 2: a configuration or store problem "
    "a restart would not fix."
))
@_config_option
# for tests only: seconds instead of sync.interval_minutes (which stays >= 1)
@click.option("--interval-seconds", type=click.FloatRange(min=0.1), default=None, hidden=True)
def run(interval_seconds: float | None) -> None:
    """The daemon: a cycle at start, then every sync.interval_minutes (for systemd)."""
    from ..daemon import run_daemon

    cfg = _load_config()
    sys.exit(run_daemon(cfg, interval_seconds))


def _check_connection():
    try:
        from ..source import check_connection
    except ImportError:
        from ..source.graph import check_connection
    return check_connection


@cli.command("test-connection", short_help="Check the token, service principal, permissions and SCIM applications.", epilog="Exit 0 when every check passes, 1 when one fails, 2 for a configuration error.")
@_config_option
@json_option("an array of checks (name, ok, detail, fix)")
def test_connection(as_json: bool) -> None:
    """Token, service principal and permissions, then each [[scim]] application (its token,
    ServiceProviderConfig, a filter query): one line each, with a fix for each failure."""
    import asyncio

    from ..config import placeholder_warnings

    cfg = _load_config()
    for warning in placeholder_warnings(cfg):
        click.echo(f"warning: {warning}", err=True)
    checks = asyncio.run(_check_connection()(cfg.entra))
    if cfg.scim:  # SPEC §7: each SCIM application too (httpx: only when there are some)
        from ..push.checks import check_app

        for app in cfg.scim:
            checks.extend(check_app(app))
    failed = [c for c in checks if c.ok is False]
    if as_json:
        _print_json([{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in checks])
    else:
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.ok is False else "skip")
            click.echo(f"{mark}  {c.name}: {c.detail}")
            if c.ok is False and c.fix:
                click.echo(f"      fix: {c.fix}")
        passed = sum(1 for c in checks if c.ok)
        click.echo(f"{passed} of {len(checks)} checks passed, {len(failed)} failed" if failed else "all checks passed")
    sys.exit(1 if failed else 0)


@cli.command(short_help="Why a user is or is not provisioned, step by step.", epilog="USER is a local id, an Entra object id, a user_name, an email or a UPN.")
@_config_option
@click.argument("user")
@json_option("the explanation (the user, each step with its outcome)")
def explain(user: str, as_json: bool) -> None:
    """Why USER is or is not provisioned, step by step (from the last cycle's view of Entra)."""
    from ..explain import explain as explain_user
    from ..explain import render

    store, cfg = _open_store()
    with store:
        ex = explain_user(store, cfg, user)
    if as_json:
        _print_json(ex.as_dict())
    else:
        click.echo(render(ex))
