"""The Graph source: the only part of syncd that talks to Microsoft Graph.

``import syncd.source`` is cheap: msal, msgraph and kiota are imported only when a read or
a connection check actually runs (commands that never talk to Graph stay fast).

    from syncd.source import GraphSource, read_graph, check_connection
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

# httpx's package imports its command-line client whenever rich and click are installed
# (they are: syncd's CLI and progress bars): start-up time for code syncd never runs.
# httpx defines a stub ``httpx.main`` when ``_main`` cannot be imported.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

if TYPE_CHECKING:
    from .checks import Check, check_connection
    from .graph import GraphSource, read_graph, read_on_demand_graph
    from .tuning import Tuning

__all__ = ["Check", "GraphSource", "Tuning", "check_connection", "read_graph", "read_on_demand_graph"]

_WHERE = {
    "GraphSource": "graph",
    "read_graph": "graph",
    "read_on_demand_graph": "graph",
    "Tuning": "tuning",
    "Check": "checks",
    "check_connection": "checks",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        where = _WHERE[name]
        return getattr(import_module(f"{__name__}.{where}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
