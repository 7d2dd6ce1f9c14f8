"""Operator commands: `status`, `check-config` (and later `run`, `test-connection`, `explain`)."""

from __future__ import annotations

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


