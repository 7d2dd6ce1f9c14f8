"""Seconds spent in each step of a cycle after the read (in process, no Graph).

    python bench/phases.py --users 100000 [--shape groups] [--full-only]

Wraps the store/plan/report functions run_cycle calls with timers; the reader turns the
simulated tenant into a GraphRead directly (see profile_cycle.py).
"""

from __future__ import annotations

import argparse
import functools
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from profile_cycle import read_of  # noqa: E402
from run import build_tenant, change_users  # noqa: E402

import syncd.cycle as cycle  # noqa: E402
from syncd import config as config_mod  # noqa: E402
from syncd.model import GraphRead  # noqa: E402
from syncd.store.db import Store  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)
RSS: list[tuple[str, float, float]] = []


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


PEAK = [0.0]  # highest RSS since the last step ended (a sampling thread keeps it)


def sample_rss() -> None:
    while True:
        PEAK[0] = max(PEAK[0], rss_mb())
        time.sleep(0.02)


def timed(owner, name, label=None):
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def wrapper(*a, **k):
        t = time.monotonic()
        PEAK[0] = rss_mb()
        try:
            return fn(*a, **k)
        finally:
            SPENT[label or name] += time.monotonic() - t
            RSS.append((label or name, max(PEAK[0], rss_mb()), rss_mb()))

    setattr(owner, name, wrapper)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--shape", choices=["directory", "groups"], default="directory")
    p.add_argument("--full-only", action="store_true")
    args = p.parse_args()
    threading.Thread(target=sample_rss, daemon=True).start()
    for owner, name in [(Store, "apply_read"), (Store, "load_directory"), (Store, "load_entra_view"),
                        (cycle, "plan"), (cycle, "apply_guards"), (cycle.Applier, "apply"),
                        (cycle.CycleReport, "add_changes"), (cycle, "save_report"), (cycle.failures, "hold_back"),
                        (cycle.failures, "record"), (cycle.scoped, "scoped_views"), (Store, "plan_universe")]:
        timed(owner, name)
    tenant = build_tenant(args.users, args.shape)
    work = Path(tempfile.mkdtemp())
    (work / "secret").write_text("x")
    cfg = config_mod.parse({"entra": {"tenant_id": "t.onmicrosoft.com", "client_id": "00000000-0000-0000-0000-000000000001",
                                      "service_principal_id": "00000000-0000-0000-0000-000000000002",
                                      "client_secret_file": str(work / "secret")},
                            "store": {"path": str(work / "syncd.db")}}, base_dir=work)
    read = read_of(tenant)
    print(f"RSS with the tenant and the read built: {rss_mb():.0f} MB")
    for label, reader in [("full", lambda *a, **k: read)]:
        SPENT.clear()
        t = time.monotonic()
        r = cycle.run_cycle(cfg, cycle.CycleOptions(), reader=reader)
        total = time.monotonic() - t
        print(f"{label}: {total:.2f}s {r.status} {r.counts}")
        for k, v in sorted(SPENT.items(), key=lambda kv: -kv[1]):
            print(f"   {k:<16} {v:6.2f}s")
    print("   RSS per step, peak/after (MB):", ", ".join(f"{k} {v:.0f}/{a:.0f}" for k, v, a in RSS))
    if args.full_only:
        return
    # an incremental cycle with 1% of the users changed
    before = tenant.version
    change_users(tenant, 0.01)
    changed = tenant.user_changes(before, tenant.version)
    full = read_of(tenant)
    inc = GraphRead(full=False, assignments=full.assignments, users={u: full.users[u] for u in changed if u in full.users},
                    delta_links={"users": "x", "groups": "y"})
    SPENT.clear()
    t = time.monotonic()
    r = cycle.run_cycle(cfg, cycle.CycleOptions(), reader=lambda *a, **k: inc)
    print(f"1% changed: {time.monotonic() - t:.2f}s {r.status} {r.counts}")
    for k, v in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        print(f"   {k:<16} {v:6.2f}s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (tenant included)")


if __name__ == "__main__":
    main()
