"""The command group and the helpers every command shares.

Every command takes ``--config PATH`` before or after its name. Expected failures print one
line on stderr and exit with the SPEC §5 code; no traceback reaches the operator.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from ..errors import SyncdError

CONFIG_HELP = "configuration file (default: $SYNCD_CONFIG, else /etc/syncd/config.toml)"


def _config_option(f: Callable) -> Callable:
    """``--config`` on every command too, so it works before or after the command's name."""

    @click.option("--config", "config_path", metavar="PATH", help=CONFIG_HELP, default=None)
    @click.pass_context
    @wraps(f)
    def wrapper(ctx: click.Context, config_path: str | None, *args: Any, **kwargs: Any) -> Any:
        if config_path:
            ctx.find_root().meta["config_path"] = config_path
        return ctx.invoke(f, *args, **kwargs)

    return wrapper


def _load_config(need_credential: bool = True):
    """The configuration; commands that never talk to Graph pass ``need_credential=False``
    (the credential is then not read, nor ``entra.ca_bundle`` checked)."""
    from .. import config as config_mod
    from ..logs import setup_logging

    ctx = click.get_current_context()
    cfg = config_mod.load(ctx.find_root().meta.get("config_path"), read_credential=need_credential)
    # one-shot commands keep stderr for warnings and errors unless debugging
    setup_logging(cfg.log_level if cfg.log_level == "debug" else "warning", cfg.log_format)
    for warning in cfg.warnings:
        click.echo(f"warning: {warning}", err=True)
    return cfg


def _open_store(*, readonly: bool = True, create: bool = False):
    """The store the configuration names, and the configuration.

    ``readonly`` (the commands that only look): never created, migrated or seeded, a missing
    one refused. Otherwise opened for writing; ``create``: a missing store is made (the
    ``add`` commands), else refused (commands that change an object that must exist).
    """
    from ..store.db import Store

    cfg = _load_config(need_credential=False)
    store = Store(cfg.store_path, readonly=readonly, create=create, origin=cfg.path)
    for warning in store.warnings:
        click.echo(f"warning: {warning}", err=True)
    return store, cfg


def _print_json(value: Any) -> None:
    """One JSON document on stdout; orjson keeps a 100k-entry report or user list fast."""
    import orjson

    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    sys.stdout.flush()


def _table(rows: list[list[Any]], headers: list[str]) -> None:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    click.echo("\n".join(out))


def _show(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(row)
    else:
        for k, v in row.items():
            click.echo(f"{k + ':':14} {', '.join(v) if isinstance(v, list) else v}")


def json_option(what: str) -> Callable:
    """``--json``, saying what the document is (the manual's "JSON output" page has its shape)."""
    return click.option("--json", "as_json", is_flag=True, help=f"print {what} as one JSON document on stdout")


class _Group(click.Group):
    """Turns SyncdError into one line (a line per problem) and its exit code.

    A group named without a command prints its help on stderr and exits 2, a usage error
    (what click does from 8.2 on, here whatever click is installed); ``--help`` prints it
    on stdout and exits 0.
    """

    group_class = type  # subgroups (users, groups, ...) behave the same

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), err=True)
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SyncdError as exc:
            for line in getattr(exc, "lines", None) or [str(exc)]:
                click.echo(f"syncd: {line}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("syncd: interrupted", err=True)
            ctx.exit(130)


ROOT_HELP = """Pull the users and groups assigned to one Entra ID enterprise application into a
local SQLite directory: on a schedule (`syncd run`, for systemd) or now (`syncd sync`),
with an audit report for every cycle. Try it offline first: `syncd demo`.

\b
Exit codes:
  0  done
  1  the cycle failed and applied nothing; or a refused local action, a
     failed connection test or audit verification, a store needing upgrade
  2  usage or configuration error (a bad option, a missing or invalid
     configuration, a missing or unusable store); also `syncd` alone
  3  the cycle applied its changes, with errors (partial)
  4  the cycle held changes back (Administrators' last member, or too many
     deactivations: see `syncd sync --approve-deactivations`)
  5  another cycle holds the lock (see `syncd sync --wait`)

\b
The configuration is --config PATH, else $SYNCD_CONFIG, else /etc/syncd/config.toml.
The manual: `syncd manual` (configuration keys, commands, JSON, the rules R1-R19
that reports cite, troubleshooting).
"""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, help=ROOT_HELP)
@click.option("--config", "config_path", metavar="PATH", help=CONFIG_HELP, default=None)
@click.version_option(package_name="syncd")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    ctx.meta.setdefault("config_path", config_path)
