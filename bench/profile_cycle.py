"""Profile the store/plan/apply/report part of a full cycle, without Graph.

    python bench/profile_cycle.py --users 100000 [--cprofile out.prof]

The reader is replaced by one that turns the simulated tenant into a GraphRead directly,
so the numbers are syncd's own work after the read (mirror update, plan, guards, apply,
report). Prints each phase's seconds; with --cprofile writes a profile of the whole cycle.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import build_tenant  # noqa: E402

from syncd import config as config_mod  # noqa: E402
from syncd.cycle import CycleOptions, run_cycle  # noqa: E402
from syncd.model import EntraGroup, EntraUser, GraphRead  # noqa: E402


def read_of(tenant) -> GraphRead:
    users = {u.id: EntraUser(u.id, u.upn, u.display_name, u.mail, u.enabled, u.user_type)
             for u in tenant.users.values() if not u.soft_deleted}
    groups = {g.id: EntraGroup(g.id, g.name, g.security_enabled) for g in tenant.groups.values()}
    members = {g.id: {m: ("user" if m in tenant.users else "group") for m in g.members} for g in tenant.groups.values()}
    return GraphRead(full=True, assignments=tenant.assigned(), users=users, groups=groups, members_added=members,
                     delta_links={"users": "x", "groups": "y"})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--cprofile", metavar="PATH")
    p.add_argument("--shape", choices=["directory", "groups"], default="directory")
    args = p.parse_args()
    tenant = build_tenant(args.users, args.shape)
    read = read_of(tenant)
    del tenant
    work = Path(tempfile.mkdtemp())
    secret = work / "secret"
    secret.write_text("x")
    cfg = config_mod.parse({"entra": {"tenant_id": "t.onmicrosoft.com", "client_id": "00000000-0000-0000-0000-000000000001",
                                      "service_principal_id": "00000000-0000-0000-0000-000000000002",
                                      "client_secret_file": str(secret)},
                            "store": {"path": str(work / "syncd.db")}}, base_dir=work)
    prof = cProfile.Profile() if args.cprofile else None
    t = time.monotonic()
    if prof:
        prof.enable()
    report = run_cycle(cfg, CycleOptions(), reader=lambda *a, **k: read)
    if prof:
        prof.disable()
        prof.dump_stats(args.cprofile)
        pstats.Stats(args.cprofile).sort_stats("tottime").print_stats(30)
    print(f"cycle {time.monotonic() - t:.2f}s status {report.status} phases {report.phases} counts {report.counts}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
