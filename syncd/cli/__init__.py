"""The command line (SPEC §3): a thin adapter over the cycle, the store and the renderers.

Each module registers its commands on the one ``cli`` group; importing them is cheap because
every heavy import (msgraph, rich, the simulator) happens inside the command that needs it.
"""

from __future__ import annotations

import sys

import click

from . import audit, directory, service, sync  # noqa: F401 - they register their commands
from .app import cli


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        click.echo(f"syncd: internal error: {type(exc).__name__}: {exc} (run with log.level = \"debug\" for details)", err=True)
        sys.exit(1)

