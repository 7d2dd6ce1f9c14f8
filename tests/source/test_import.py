"""Commands that never talk to Graph must not pay for msgraph (~1,800 modules)."""

from __future__ import annotations

import subprocess
import sys


def test_import_syncd_source_is_light():
    code = (
        "import sys, syncd.source\n"
        "from syncd.source import GraphSource, check_connection, read_graph\n"
        "heavy = [m for m in ('msgraph', 'msgraph_core', 'kiota_abstractions', 'kiota_http') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_the_graph_client_does_not_import_httpx_command_line_tool():
    # httpx imports its CLI (rich, ~65 ms) when it can: nothing in a cycle runs it
    code = (
        "import sys, syncd.source.client, httpx\n"
        "print(sorted(m for m in ('httpx._main', 'rich', 'rich.console') if sys.modules.get(m)), callable(httpx.main))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] True"
