"""`syncd report`, `syncd reports` (list, export) and `syncd audit verify`."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from .app import _config_option, _open_store, _print_json, _table, cli

STATUSES = ["succeeded", "failed", "held", "partial"]


class _DateTime(click.ParamType):
    """A date (2026-01-31) or an ISO 8601 time; without a timezone it is UTC."""

    name = "DATE"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        from ..store.audit import parse_time

        try:
            return parse_time(value.strip().replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", param, ctx)


DATE = _DateTime()


@cli.command()
@_config_option
@click.argument("cycle", default="latest", metavar="[latest|CYCLE_ID]")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "html"]), default="text")
@click.option("--json", "as_json", is_flag=True, help="same as --format json")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="write to FILE (mode 0600)")
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


class _DefaultGroup(click.Group):
    """A group that runs ``default_command`` when no subcommand is named (`syncd reports --json`)."""

    default_command = "list"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not any(a in self.commands for a in args) and not {"-h", "--help"} & set(args):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_DefaultGroup)
@_config_option
def reports() -> None:
    """The cycles' reports: `list` (the default) and `export`.

    `syncd reports [--limit N] [--since DATE] [--status STATUS] [--json]` lists cycles, newest
    first; `syncd reports export [--since DATE] [--status STATUS] [-o FILE]` writes JSON Lines.
    """


@reports.command("list")
@_config_option
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="at most N cycles")
@click.option("--since", type=DATE, default=None, help="cycles started at or after DATE")
@click.option("--status", "status", type=click.Choice(STATUSES), default=None)
@click.option("--json", "as_json", is_flag=True)
def reports_list(limit: int | None, since: datetime | None, status: str | None, as_json: bool) -> None:
    """The list of cycles, newest first."""
    from ..store.audit import list_reports

    store, _ = _open_store()
    with store:
        rows = list_reports(store, limit, since=since, status=status)
    if as_json:
        _print_json(rows)
        return
    _table(
        [[r["cycle_id"], r["status"], r["mode"] + (" (dry run)" if r["dry_run"] else ""), r["trigger"], r["started_at"],
          " ".join(f"{k}={v}" for k, v in r["counts"].items())] for r in rows],
        ["CYCLE", "STATUS", "MODE", "TRIGGER", "STARTED", "COUNTS"],
    )


@reports.command("export")
@_config_option
@click.option("--since", type=DATE, default=None, help="cycles started at or after DATE (default: every stored cycle)")
@click.option("--status", "status", type=click.Choice(STATUSES), default=None)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="write to FILE (mode 0600)")
def reports_export(since: datetime | None, status: str | None, output: str | None) -> None:
    """JSON Lines for a SIEM: one whole cycle document (entries included) per line, oldest first."""
    from ..report.render import open_private
    from ..store.audit import export_reports

    store, _ = _open_store()
    with store:
        c = store.conn
        c.execute("BEGIN")  # one snapshot while streaming
        try:
            out = open_private(output) if output else sys.stdout
            n = 0
            try:
                for line in export_reports(store, since=since, status=status):
                    out.write(line)
                    n += 1
            finally:
                if output:
                    out.close()
        finally:
            c.execute("COMMIT")
    if output:
        click.echo(f"wrote {n} cycles to {output}", err=True)


@cli.group()
@_config_option
def audit() -> None:
    """The audit trail's integrity."""


@audit.command("verify")
@_config_option
@click.option("--json", "as_json", is_flag=True)
def audit_verify(as_json: bool) -> None:
    """Check that the stored reports are complete and unaltered (exit 0), else name the first bad cycle (exit 1)."""
    from ..store.audit import verify_chain

    store, _ = _open_store()
    with store:
        result = verify_chain(store)
    if as_json:
        _print_json(result.as_dict())
    elif result.ok:
        anchored = f", after pruned cycle {result.anchor_cycle}" if result.anchor_cycle else ""
        click.echo(f"audit trail intact: {result.cycles} cycles, {result.entries} entries{anchored}")
    else:
        p = result.problem
        assert p is not None
        where = f"cycle {p.cycle_id}" if p.cycle_id else "the audit trail"
        click.echo(
            f"audit trail broken at {where}: {p.kind.replace('_', ' ')}: {p.detail}"
            f" ({result.cycles} earlier cycle{'' if result.cycles == 1 else 's'} verified)",
            err=True,
        )
    if not result.ok:
        click.get_current_context().exit(1)
