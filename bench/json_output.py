"""What `sync --json` itself costs: one full cycle with --json, one without (fresh stores).

    python bench/json_output.py 100000

The report of a 100k-user initial cycle holds ~140k entries; `syncd sync --json` writes them
in chunks as the canonical JSON the report holds (cli/sync.py, report/render.py
``json_chunks``), so printing costs no second copy of the report.
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import run as b  # noqa: E402

from syncd.simulator import Simulator  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
t = b.build_tenant(n, "directory")
w = Path(tempfile.mkdtemp())
with Simulator(t) as sim:
    for i, args in enumerate([["sync", "--json"], ["sync"]]):
        cfg = w / f"c{i}.toml"
        cfg.write_text(sim.config_toml(str(w / f"s{i}.db")))
        r = b.syncd(cfg, *args)
        print(" ".join(args), f"wall {r.wall:.2f}s peak RSS {r.rss_mb:.0f} MB exit {r.code} stdout {len(r.out):,} chars")
