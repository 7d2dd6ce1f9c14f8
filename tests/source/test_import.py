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
