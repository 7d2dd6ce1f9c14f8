"""Benchmark: a 100k-user initial cycle's report, stored, loaded, verified and rendered.

    python bench/bench_reports.py [--users 100000] [--groups 20] [--members]

Builds the report of a first full cycle (one ``create`` per user with its three modified
properties, one per group, and with ``--members`` one ``add_member`` per user), saves it to a
temporary store through the real ``save_report``, then times loading, ``audit verify``, each
renderer, and the JSON Lines export. Prints seconds per step.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncd.model import Change  # noqa: E402
from syncd.report.model import CycleReport  # noqa: E402
from syncd.report.render import render  # noqa: E402
from syncd.store.audit import export_reports, load_report, save_report, verify_chain  # noqa: E402
from syncd.store.db import Store  # noqa: E402

RESULTS: list[tuple[str, float, float, str]] = []


@contextmanager
def timed(step: str, note: str = ""):
    """Wall and CPU seconds (CPU is the steadier number on a busy machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    yield
    RESULTS.append((step, time.perf_counter() - t0, time.process_time() - c0, note))


def note(text: str) -> None:
    RESULTS[-1] = (*RESULTS[-1][:3], text)


def build(users: int, groups: int, members: bool) -> CycleReport:
    started = datetime.now(UTC)
    rep = CycleReport(cycle_id="bench-initial", mode="full", dry_run=False, trigger="manual",
                      started_at=started.isoformat(timespec="seconds"),
                      ended_at=(started + timedelta(seconds=90)).isoformat(timespec="seconds"),
                      graph_requests=users // 999 * 2 + 10, throttled=3,
                      phases={"read": 60.0, "plan": 5.0, "apply": 20.0})
    changes: list[Change] = []
    for i in range(users):
        upn = f"user{i:06d}@contoso.com"
        changes.append(Change("create", "user", f"{i:08x}-0000-4000-8000-{i:012x}", upn, local_id=i + 2,
                              reason="assigned to the application",
                              modified={"user_name": (None, upn), "display_name": (None, f"User {i:06d}, Contoso"),
                                        "email": (None, upn)}))
    for g in range(groups):
        changes.append(Change("create", "group", f"g{g:07x}-0000-4000-8000-000000000000", f"Group {g}", local_id=g + 2,
                              reason="assigned to the application", modified={"name": (None, f"Group {g}")}))
    if members:
        for i in range(users):
            changes.append(Change("add_member", "membership", f"g{i % max(groups, 1):07x}-0000-4000-8000-000000000000",
                                  f"Group {i % max(groups, 1)} <- user{i:06d}@contoso.com", reason="member in Entra ID"))
    rep.add_changes(changes)
    return rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--members", action="store_true", help="also one add_member entry per user")
    args = ap.parse_args()

    with timed("build report (in memory)"):
        rep = build(args.users, args.groups, args.members)
    n = len(rep.entries)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "syncd.db")
        with Store(path) as store:
            with timed("save_report (one transaction)"), store.transaction():
                save_report(store, rep)
            with timed("load_report"):
                loaded = load_report(store, "latest")
            assert len(loaded.entries) == n
            with timed("audit verify (chain + every entry)"):
                result = verify_chain(store)
            assert result.ok and result.entries == n, result
            for fmt in ("text", "json", "csv", "html"):
                with timed(f"render {fmt}"):
                    out = render(loaded, fmt)
                note(f"{len(out.encode()) / 1e6:.1f} MB")
            buf = io.StringIO()
            with timed("reports export (JSON Lines)"):
                for line in export_reports(store):
                    buf.write(line)
            note(f"{len(buf.getvalue().encode()) / 1e6:.1f} MB")
        db_mb = Path(path).stat().st_size / 1e6

    print(f"report of {args.users} users, {args.groups} groups{' + memberships' if args.members else ''}: {n} entries; store {db_mb:.0f} MB")
    width = max(len(r[0]) for r in RESULTS)
    print(f"  {'step':<{width}}  {'wall':>8}  {'cpu':>8}")
    for step, wall, cpu, text in RESULTS:
        print(f"  {step:<{width}}  {wall:6.2f} s  {cpu:6.2f} s  {text}")


if __name__ == "__main__":
    main()
