"""`syncd sync` (one cycle now), `syncd demo`, `syncd simulator` and `syncd manual`."""

from __future__ import annotations

import sys

import click

from .app import _config_option, _load_config, cli

# --------------------------------------------------------------------------- sync

SYNC_EPILOG = """\b
Exit codes: 0 done, 1 failed (nothing applied), 2 usage or configuration
error, 3 partial (applied, with errors), 4 held (changes held back),
5 another cycle holds the lock. A dry run exits as the real cycle would.
USER (--user) is an Entra object id, a UPN, or what the local directory
knows the user by: a local id, a user_name (a B2B guest's included) or an
email. GROUP (--group) is an Entra object id or a group name.
"""


@cli.command(short_help="Run one cycle now (--dry-run, --full, --user, --group).", epilog=SYNC_EPILOG)
@_config_option
@click.option("--dry-run", is_flag=True, help="plan and report, change nothing (the report is kept)")
@click.option("--full", is_flag=True, help="ignore the delta state: read everything from Graph")
@click.option("--user", "users", multiple=True, metavar="USER", help="provision this user on demand, touching nothing else (repeatable)")
@click.option("--group", "groups", multiple=True, metavar="GROUP", help="provision this group and its members on demand (repeatable)")
@click.option("--approve-deactivations", is_flag=True,
              help="apply the deactivations staged because there were more than sync.deactivation_threshold (those still due)")
@click.option("--wait", type=click.FloatRange(min=0), default=0, metavar="SECONDS",
              help="when another cycle runs, wait up to SECONDS for it to end (default 0: exit 5 at once)")
@click.option("--json", "as_json", is_flag=True, help="print the cycle's report as one JSON document on stdout")
def sync(dry_run: bool, full: bool, users: tuple[str, ...], groups: tuple[str, ...], approve_deactivations: bool, wait: float, as_json: bool) -> None:
    """Run one cycle now: read Graph, plan, apply in one transaction, report."""
    cfg = _load_config()
    if (users or groups) and (full or approve_deactivations):
        raise click.UsageError("--user/--group provision on demand: they cannot be combined with --full or --approve-deactivations")
    from ..source.auth import shared_token_source

    # the token's round trips to Entra overlap the imports and the store's opening below
    shared_token_source(cfg.entra).prefetch()
    if users:
        users = _entra_ids(cfg, users)
    from ..cycle import EXIT_BY_STATUS, CycleOptions, new_cycle_id, run_cycle
    from ..report.render import render_text_summary

    options = CycleOptions(
        dry_run=dry_run, full=full, users=users, groups=groups,
        approve_deactivations=approve_deactivations, wait=wait, trigger="manual", cycle_id=new_cycle_id(),
    )
    from ..progress import cycle_progress
    from ..store.db import checkpoints_left_to_caller

    status = None
    # the cycle's commit leaves the WAL: copied back while the report is printed, before the exit
    with checkpoints_left_to_caller() as left:
        try:
            with cycle_progress(enabled=not as_json and sys.stderr.isatty()) as progress:
                report = run_cycle(cfg, options, progress=progress)
            left.behind()
            status = report.status
            if as_json:
                from ..report.render import json_chunks

                sys.stdout.flush()
                for chunk in json_chunks(report):
                    sys.stdout.buffer.write(chunk.encode())
                sys.stdout.buffer.write(b"\n")
                sys.stdout.buffer.flush()
            else:
                click.echo(render_text_summary(report))
        except KeyboardInterrupt:
            status = status or _committed_status(cfg.store_path, options.cycle_id or "")
            if status is None:
                raise  # (nothing was committed: "interrupted", 130)
            what = "dry run" if dry_run else "cycle"
            click.echo(f"syncd: interrupted; the {what} {options.cycle_id} was committed ({status}): "
                       f"syncd report {options.cycle_id}", err=True)
    sys.exit(EXIT_BY_STATUS[status])


def _committed_status(store_path: str, cycle_id: str) -> str | None:
    """The status of cycle ``cycle_id`` if its report is in the store (it was committed)."""
    from ..store.audit import cycle_status
    from ..store.db import Store

    try:
        with Store(store_path, readonly=True) as store:
            return cycle_status(store, cycle_id)
    except Exception:  # noqa: BLE001 - on the way out of an interrupt: say what is known
        return None


def _entra_ids(cfg, users: tuple[str, ...]) -> tuple[str, ...]:
    """``--user`` values the local store knows (a local id, a user_name such as a B2B
    guest's, an email) as the Entra object ids Graph is asked for; others as given."""
    from pathlib import Path

    from ..errors import SyncdError
    from ..source.pages import is_guid

    if all(is_guid(u) for u in users) or not Path(cfg.store_path).exists():
        return users
    from ..store.db import Store
    from ..store.local import entra_id_for_user

    try:
        with Store(cfg.store_path, readonly=True) as store:
            return tuple(u if is_guid(u) else (entra_id_for_user(store, u) or u) for u in users)
    except SyncdError:
        return users  # (a store the cycle will upgrade or report on itself)


# --------------------------------------------------------------------------- demo


@cli.command(short_help="Try it: two cycles on a bundled simulated tenant, offline.", epilog=(
    "With --store DIR/NAME.db it also writes DIR/NAME.toml and DIR/NAME.secret, and refuses to start when any of them "
    "exists. The kept store is then yours to explore: syncd --config DIR/NAME.toml users list (status, groups list, "
    "reports, report latest, explain USER ...). To go on syncing it: syncd simulator --demo --demo-changes."
))
@click.option("--store", "store_path", default=None, metavar="PATH",
              help="keep the demo's directory in PATH (a new file), with a configuration beside it")
@click.option("--json", "as_json", is_flag=True, help="print both cycles' reports as one JSON array, nothing else")
def demo(store_path: str | None, as_json: bool) -> None:
    """The whole job on a bundled simulated tenant, offline: two cycles and their reports."""
    from ..demo import run_demo

    sys.exit(run_demo(store_path, as_json=as_json))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
             add_help_option=False, short_help="Serve a simulated tenant to sync against (--help).")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def simulator(args: tuple[str, ...]) -> None:
    """Serve a simulated tenant to sync against (--demo: the demo's; --help: every option)."""
    from ..simulator.__main__ import main

    sys.exit(main(list(args), prog="syncd simulator"))


# --------------------------------------------------------------------------- the manual


@cli.command(short_help="Read the manual (pages: syncd manual).", epilog="Pipe it to a pager: syncd manual rules | less")
@click.argument("page", required=False)
def manual(page: str | None) -> None:
    """The manual: without PAGE, its pages and where they are; with PAGE, that page's text."""
    from ..manual import find_manual, pages

    where = find_manual()
    if where is None:
        raise click.ClickException("the manual is not installed with this syncd: see docs/ in syncd's source")
    if page is None:
        click.echo(f"syncd's manual, in {where}:")
        for name, title in pages(where):
            click.echo(f"  {name:<16} {title}")
        click.echo("syncd manual PAGE prints one.")
        return
    path = where / f"{page.removesuffix('.md')}.md"
    if not path.is_file():
        known = ", ".join(name for name, _ in pages(where))
        raise click.UsageError(f"no page {page!r} in the manual (pages: {known})")
    click.echo(path.read_text(encoding="utf-8"), nl=False)
