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
    """The configuration; commands that never talk to Graph pass ``need_credential=False``."""
    from .. import config as config_mod
    from ..logs import setup_logging

    ctx = click.get_current_context()
    cfg = config_mod.load(ctx.find_root().meta.get("config_path"), read_credential=need_credential)
    # one-shot commands keep stderr for warnings and errors unless debugging
    setup_logging(cfg.log_level if cfg.log_level == "debug" else "warning", cfg.log_format)
    for warning in cfg.warnings:
        click.echo(f"warning: {warning}", err=True)
    return cfg


def _open_store():
    from ..store.db import Store

    cfg = _load_config(need_credential=False)
    return Store(cfg.store_path), cfg


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


class _Group(click.Group):
    """Turns SyncdError into one line and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SyncdError as exc:
            click.echo(f"syncd: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("syncd: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help=CONFIG_HELP, default=None)
@click.version_option(package_name="syncd")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """syncd: pull users and groups assigned to an Entra ID application into a local directory."""
    ctx.meta.setdefault("config_path", config_path)
