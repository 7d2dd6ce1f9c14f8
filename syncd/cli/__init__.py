"""The command line (SPEC §3): a thin adapter over the cycle, the store and the renderers.

Each module registers its commands on the one ``cli`` group; importing them is cheap because
every heavy import (msgraph, rich, the simulator) happens inside the command that needs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import click

from . import audit, directory, service, sync  # noqa: F401 - they register their commands
from .app import cli


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        logging.getLogger("syncd").debug("internal error", exc_info=True)  # the details the line below promises
        click.echo(f"syncd: internal error: {type(exc).__name__}: {exc} (run with log.level = \"debug\" for details)", err=True)
        code = 1
    else:
        code = 0
    _exit(code)


def _exit(code: object) -> None:
    """Leave without the interpreter's teardown.

    Every command has closed its store and released its lock by now; what is left is
    freeing each object of a cycle one by one (about 0.3 s at 20k users, seconds at 100k),
    which an exiting process does not need. Output and log files are flushed first.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):
        click.echo(str(code), err=True)  # sys.exit("message"), as SystemExit prints it
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # reader gone (`| head`), stream closed
            stream.flush()
    os._exit(code)

