"""`syncd report`, `syncd reports` (list, export) and `syncd audit verify`."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from .app import _config_option, _Group, _open_store, _print_json, _table, cli, json_option

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


def _output(path: str | None) -> str | None:
    """``-o FILE``: a file in a directory that exists and is writable, or a usage error now
    (before any work), naming the option, the path and the fix."""
    if path is None:
        return None
    import os
    from pathlib import Path

    from ..errors import UsageError

    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageError(f"-o {path}: is a directory: name a file")
    if not parent.is_dir():
        raise UsageError(f"-o {path}: the directory {parent} does not exist: create it or write elsewhere")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"-o {path}: not writable by this user: write elsewhere")
    return path


def _write_failed(path: str, exc: OSError):
    from ..errors import UsageError

    return UsageError(f"-o {path}: cannot write it: {exc.strerror or exc}")


@cli.command(short_help="One cycle's report (text, json, csv, html).", epilog="CYCLE_ID as `syncd reports` lists it; `latest` (the default) is the newest cycle, dry runs included.")
@_config_option
@click.argument("cycle", default="latest", metavar="[latest|CYCLE_ID]")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "html"]), default="text", show_default=True,
              help="text for a terminal, json (the report document), csv (a row per change and property), html (one page)")
@click.option("--json", "as_json", is_flag=True, help="same as --format json")
@click.option("-o", "--output", metavar="FILE", default=None, help="write to FILE (mode 0600) instead of stdout")
@click.option("-v", "--verbose", is_flag=True, help="text and html: also the time each phase took (read, plan, apply)")
def report(cycle: str, fmt: str, as_json: bool, output: str | None, verbose: bool) -> None:
    """One cycle's report: what it changed, skipped, staged or failed, and why."""
    from ..report.render import render
    from ..store.audit import load_report

    _output(output)
    store, _ = _open_store()
    with store:
        rep = load_report(store, cycle)
    text = render(rep, "json" if as_json else fmt, verbose=verbose)
    if output:
        from ..report.render import write_private

        try:
            write_private(output, text)
        except OSError as exc:
            raise _write_failed(output, exc) from None
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


class _DefaultGroup(_Group):
    """A group that runs ``default_command`` when no subcommand is named (`syncd reports --json`)."""

    default_command = "list"
    no_args_is_help = False

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not any(a in self.commands for a in args) and not {"-h", "--help"} & set(args):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_DefaultGroup, short_help="The stored cycles: list (the default), export.")
@_config_option
def reports() -> None:
    """The stored cycles: `list` (the default) and `export`.

    \b
    syncd reports [--limit N] [--since DATE] [--status STATUS] [--json]
        the cycles, newest first
    syncd reports export [--since DATE] [--status STATUS] [-o FILE]
        every cycle whole (entries included) as JSON Lines, for a SIEM
    syncd reports export --sqlite FILE
        the audit trail as a plain SQLite database to browse and search
        (Datasette, the sqlite-utils command line)
    """


STATUS_HELP = "only cycles that ended with this status"


@reports.command("list", short_help="The stored cycles, newest first (the default).")
@_config_option
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="at most N cycles")
@click.option("--since", type=DATE, default=None, help="cycles started at or after DATE (YYYY-MM-DD or an ISO 8601 time; UTC unless it says)")
@click.option("--status", "status", type=click.Choice(STATUSES), default=None, help=STATUS_HELP)
@json_option("an array of cycles (cycle_id, status, mode, dry_run, trigger, started_at, ended_at, counts)")
def reports_list(limit: int | None, since: datetime | None, status: str | None, as_json: bool) -> None:
    """The stored cycles, newest first, with what each one counted."""
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


@reports.command("export", short_help="Every cycle as JSON Lines, or --sqlite FILE.")
@_config_option
@click.option("--since", type=DATE, default=None, help="cycles started at or after DATE (default: every stored cycle)")
@click.option("--status", "status", type=click.Choice(STATUSES), default=None, help=STATUS_HELP)
@click.option("-o", "--output", metavar="FILE", default=None, help="JSON Lines to FILE (mode 0600) instead of stdout")
@click.option("--sqlite", "sqlite_file", metavar="FILE", default=None,
              help="write a SQLite database instead: tables cycles and entries (full-text search on entries); "
                   "an earlier export at FILE is replaced, any other file refused")
def reports_export(since: datetime | None, status: str | None, output: str | None, sqlite_file: str | None) -> None:
    """Every stored cycle, whole, oldest first: JSON Lines (one cycle a line, with its chain
    hashes) for a SIEM, or with --sqlite a database to browse (`datasette FILE`,
    `sqlite-utils tables FILE --counts`, `sqlite-utils search FILE entries WORD`)."""
    if sqlite_file is not None:
        if output is not None:
            raise click.UsageError("--sqlite FILE and -o FILE are two ways to export: give one")
        from ..store.export import export_sqlite

        _output(sqlite_file)
        store, _ = _open_store()
        with store:
            cycles, entries = export_sqlite(store, sqlite_file, since=since, status=status)
        click.echo(f"wrote {cycles} cycles and {entries} entries to {sqlite_file}", err=True)
        return
    from ..report.render import open_private
    from ..store.audit import export_reports

    _output(output)
    store, _ = _open_store()
    with store, store.snapshot():  # one state of the store while streaming
        try:
            out = open_private(output) if output else sys.stdout
        except OSError as exc:
            raise _write_failed(str(output), exc) from None
        n = 0
        try:
            for line in export_reports(store, since=since, status=status):
                out.write(line)
                n += 1
        finally:
            if output:
                out.close()
    if output:
        click.echo(f"wrote {n} cycles to {output}", err=True)


@cli.group()
@_config_option
def audit() -> None:
    """The audit trail's integrity (`syncd audit verify`)."""


@audit.command("verify", short_help="Check the stored reports are complete and unaltered.")
@_config_option
@json_option("the result (ok, cycles, entries, anchor, head, problem)")
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
