"""Run a simulated tenant in its own process (benchmarks, the demo, manual poking).

    python -m syncd.simulator --users 100000 --groups 100 --members-per-group 1000 \\
        --write-config /tmp/sim.toml --store /tmp/syncd.db

Prints the URL on the first line of stdout (then a JSON line describing the tenant) and
serves until SIGTERM or SIGINT. The secret goes only into the 0600 file the config names.
With --control, another process can change the tenant between cycles through
``POST /_simulator/call`` (see syncd/simulator/control.py), e.g. the ``churn`` method.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from .generate import generate_tenant
from .sample import demo_tenant
from .server import Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m syncd.simulator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", action="store_true", help="serve the ~50-user demo tenant")
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--members-per-group", type=int, default=10)
    p.add_argument("--nested-groups", type=int, default=0)
    p.add_argument("--guests", type=int, default=0)
    p.add_argument("--disabled", type=int, default=0)
    p.add_argument("--assign", choices=["groups", "users", "both"], default="groups")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds slept per request")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token-lifetime", type=int, default=3600)
    p.add_argument("--members-per-page", type=int, default=500)
    p.add_argument("--control", action="store_true",
                   help="enable POST /_simulator/call (token in the file named by "
                        "control_token_file in the JSON line)")
    p.add_argument("--write-config", metavar="PATH", help="write a syncd config for this tenant")
    p.add_argument("--store", metavar="PATH", default="syncd.db",
                   help="store.path for the written config")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if args.demo:
        tenant = demo_tenant(seed=args.seed or 7)
    else:
        tenant = generate_tenant(args.users, args.groups, args.members_per_group,
                                 nested_groups=args.nested_groups, guests=args.guests,
                                 disabled=args.disabled, assign=args.assign, seed=args.seed)
    built = time.monotonic() - started
    sim = Simulator(tenant, latency=args.latency, token_lifetime=args.token_lifetime,
                    members_per_page=args.members_per_page, port=args.port,
                    control=args.control)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with sim:
        if args.write_config:
            Path(args.write_config).write_text(sim.config_toml(args.store))
        print(sim.url, flush=True)
        print(json.dumps({
            "url": sim.url, "ca_path": sim.ca_path, "tenant_id": tenant.tenant_id,
            "client_id": tenant.client_id, "service_principal_id": tenant.service_principal_id,
            "users": len(tenant.users), "groups": len(tenant.groups),
            "assignments": len(tenant.assignments), "build_seconds": round(built, 2),
            "config": args.write_config, "control_token_file": sim.control_token_path,
        }), flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
