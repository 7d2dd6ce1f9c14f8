"""Operator commands: `run` (the daemon), `status`, `check-config`, `test-connection`, `explain`."""

from __future__ import annotations

import sys

import click

from .app import _config_option, _load_config, _open_store, _print_json, cli


@cli.command()
@_config_option
@click.option("--json", "as_json", is_flag=True)
def status(as_json: bool) -> None:
    """Enabled or not, last cycle, next run, counts, warnings."""
    from ..status import collect_status, render_status

    store, cfg = _open_store()
    with store:
        st = collect_status(store, cfg)
    if as_json:
        _print_json(st)
    else:
        click.echo(render_status(st))




@cli.command("check-config")
@_config_option
@click.option("--json", "as_json", is_flag=True)
def check_config(as_json: bool) -> None:
    """Validate the configuration and print what it resolved (never the secret)."""
    from ..config import describe

    cfg = _load_config()
    resolved = describe(cfg)
    if as_json:
        _print_json(resolved)
    else:
        click.echo(f"configuration {cfg.path} is valid")
        for section, values in resolved.items():
            if isinstance(values, dict):
                click.echo(f"[{section}]")
                for k, v in values.items():
                    click.echo(f"  {k} = {v}")


@cli.command()
@_config_option
# for tests only: seconds instead of sync.interval_minutes (which stays >= 1, SPEC §2)
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


@cli.command("test-connection")
@_config_option
@click.option("--json", "as_json", is_flag=True)
def test_connection(as_json: bool) -> None:
    """Token, service principal and permissions, one line each, with a fix for each failure."""
    import asyncio

    cfg = _load_config()
    checks = asyncio.run(_check_connection()(cfg.entra))
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


@cli.command()
@_config_option
@click.argument("user")
@click.option("--json", "as_json", is_flag=True)
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
