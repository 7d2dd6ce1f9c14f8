"""`syncd sync` (one cycle now) and `syncd demo`."""

from __future__ import annotations

import sys

import click

from .app import _config_option, _load_config, cli

# --------------------------------------------------------------------------- sync


@cli.command()
@_config_option
@click.option("--dry-run", is_flag=True, help="plan and report, change nothing")
@click.option("--full", is_flag=True, help="ignore delta state: read everything")
@click.option("--user", "users", multiple=True, metavar="ID|UPN", help="provision this user on demand (repeatable)")
@click.option("--group", "groups", multiple=True, metavar="ID|NAME", help="provision this group on demand (repeatable)")
@click.option("--approve-deactivations", is_flag=True, help="apply the deactivations staged by the threshold (R15)")
@click.option("--wait", type=click.FloatRange(min=0), default=0, metavar="SECONDS", help="wait this long for another cycle to end")
@click.option("--json", "as_json", is_flag=True, help="print the cycle's report as JSON")
def sync(dry_run: bool, full: bool, users: tuple[str, ...], groups: tuple[str, ...], approve_deactivations: bool, wait: float, as_json: bool) -> None:
    """Run one cycle now."""
    cfg = _load_config()
    if (users or groups) and (full or approve_deactivations):
        raise click.UsageError("--user/--group provision on demand: they cannot be combined with --full or --approve-deactivations")
    from ..source.auth import shared_token_source

    # the token's round trips to Entra overlap the imports and the store's opening below
    shared_token_source(cfg.entra).prefetch()
    from ..cycle import EXIT_BY_STATUS, CycleOptions, run_cycle
    from ..report.render import render_text_summary

    options = CycleOptions(
        dry_run=dry_run, full=full, users=users, groups=groups,
        approve_deactivations=approve_deactivations, wait=wait, trigger="manual",
    )
    from ..progress import cycle_progress

    with cycle_progress(enabled=not as_json and sys.stderr.isatty()) as progress:
        report = run_cycle(cfg, options, progress=progress)
    if as_json:
        from ..report.render import json_chunks

        sys.stdout.flush()
        for chunk in json_chunks(report):
            sys.stdout.buffer.write(chunk.encode())
        sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()
    else:
        click.echo(render_text_summary(report))
    sys.exit(EXIT_BY_STATUS[report.status])


@cli.command()
@click.option("--store", "store_path", default=None, metavar="PATH", help="keep the demo's directory here (default: a temporary one)")
@click.option("--json", "as_json", is_flag=True, help="print both cycles' reports as JSON")
def demo(store_path: str | None, as_json: bool) -> None:
    """The whole job on a bundled simulated tenant, offline."""
    from ..demo import run_demo

    sys.exit(run_demo(store_path, as_json=as_json))


