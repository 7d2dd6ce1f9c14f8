"""`syncd report`, `syncd reports` and `syncd audit`."""

from __future__ import annotations

import sys

import click

from .app import _config_option, _open_store, _print_json, _table, cli


@cli.command()
@_config_option
@click.argument("cycle", default="latest", metavar="[latest|CYCLE_ID]")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "html"]), default="text")
@click.option("--json", "as_json", is_flag=True, help="same as --format json")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="write to FILE")
def report(cycle: str, fmt: str, as_json: bool, output: str | None) -> None:
    """One cycle's report."""
    from ..report.render import render
    from ..store.audit import load_report

    store, _ = _open_store()
    with store:
        rep = load_report(store, cycle)
    text = render(rep, "json" if as_json else fmt)
    if output:
        from ..report.render import write_private

        write_private(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@cli.command()
@_config_option
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N")
@click.option("--json", "as_json", is_flag=True)
def reports(limit: int | None, as_json: bool) -> None:
    """The list of cycles, newest first."""
    from ..store.audit import list_reports

    store, _ = _open_store()
    with store:
        rows = list_reports(store, limit)
    if as_json:
        _print_json(rows)
        return
    _table(
        [[r["cycle_id"], r["status"], r["mode"] + (" (dry run)" if r["dry_run"] else ""), r["trigger"], r["started_at"],
          " ".join(f"{k}={v}" for k, v in r["counts"].items())] for r in rows],
        ["CYCLE", "STATUS", "MODE", "TRIGGER", "STARTED", "COUNTS"],
    )


