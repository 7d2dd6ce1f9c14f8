"""Run a simulated tenant in its own process (benchmarks, the demo, manual poking).

    syncd simulator --demo --write-config sim.toml --store demo.db
    python -m syncd.simulator --users 100000 --groups 100 --members-per-group 1000 \\
        --write-config /tmp/sim.toml --store /tmp/syncd.db

Serves an Entra ID token endpoint and the Microsoft Graph subset syncd reads, over HTTPS on
127.0.0.1 with a throw-away CA, until Ctrl-C or SIGTERM; then `syncd --config sim.toml sync`
(or `syncd run`) works against it from another terminal. The written configuration names
the CA and a 0600 secret file that live only while the simulator runs; a kept store stays
readable afterwards (a store synced against an earlier simulator reads everything once: its
delta links named the old one).

Prints the URL on the first line of stdout (then a JSON line describing the tenant). The
secret goes only into the 0600 file the config names. With --control, another process can
change the tenant between cycles through ``POST /_simulator/call`` (see
syncd/simulator/control.py), e.g. the ``churn`` method.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .generate import generate_tenant
from .sample import apply_demo_changes, demo_tenant
from .server import Simulator

# the first line of a configuration this program wrote: only such a file is overwritten
MARKER = "# written by syncd simulator"


def parse_args(argv: list[str] | None = None, prog: str = "python -m syncd.simulator") -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", action="store_true",
                   help="serve the ~50-user demo tenant of `syncd demo` (the other tenant options are ignored)")
    p.add_argument("--demo-changes", action="store_true",
                   help="with --demo: make the demo's changes first, so a store kept by `syncd demo --store` "
                        "goes on from where the demo left it")
    p.add_argument("--users", type=int, default=100, help="users in a generated tenant (default: 100)")
    p.add_argument("--groups", type=int, default=10, help="groups in a generated tenant (default: 10)")
    p.add_argument("--members-per-group", type=int, default=10, help="members of each group (default: 10)")
    p.add_argument("--nested-groups", type=int, default=0, help="groups nested in other groups (default: 0)")
    p.add_argument("--guests", type=int, default=0, help="B2B guest users (default: 0)")
    p.add_argument("--disabled", type=int, default=0, help="disabled users (default: 0)")
    p.add_argument("--assign", choices=["groups", "users", "both"], default="groups",
                   help="what is assigned to the application (default: groups)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed makes the same tenant, ids included")
    p.add_argument("--latency", type=float, default=0.0, help="seconds slept per request (default: 0)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    p.add_argument("--token-lifetime", type=int, default=3600, help="access token lifetime in seconds (default: 3600)")
    p.add_argument("--members-per-page", type=int, default=500,
                   help="group members per page of a groups delta (default: 500)")
    p.add_argument("--control", action="store_true",
                   help="enable POST /_simulator/call (token in the file named by "
                        "control_token_file in the JSON line)")
    p.add_argument("--write-config", metavar="PATH",
                   help="write a syncd configuration for this tenant to PATH (an existing file only if "
                        "this program wrote it)")
    p.add_argument("--store", metavar="PATH", default="syncd.db",
                   help="store.path for the written config (default: syncd.db beside it)")
    return p.parse_args(argv)


def _refuse_overwrite(path: str) -> str | None:
    p = Path(path)
    if not p.exists():
        return None
    try:
        first = p.read_text(errors="replace").split("\n", 1)[0]
    except OSError as exc:
        return f"--write-config {path}: cannot read it ({exc.strerror})"
    if first.startswith(MARKER):
        return None
    return f"--write-config {path}: the file exists and was not written by the simulator: remove it or choose another name"


def main(argv: list[str] | None = None, prog: str = "python -m syncd.simulator") -> int:
    args = parse_args(argv, prog)
    if args.write_config and (problem := _refuse_overwrite(args.write_config)):
        print(f"{prog.split()[0]}: {problem}", file=sys.stderr)
        return 2
    started = time.monotonic()
    if args.demo:
        tenant = demo_tenant(seed=args.seed or 7)
        if args.demo_changes:
            apply_demo_changes(tenant)
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
            config = Path(args.write_config)
            store = Path(args.store)
            if not store.is_absolute():
                store = config.resolve().parent / store
            text = f"{MARKER} for {sim.url}: valid while it runs\n" + sim.config_toml(str(store))
            fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        print(sim.url, flush=True)
        print(json.dumps({
            "url": sim.url, "ca_path": sim.ca_path, "tenant_id": tenant.tenant_id,
            "client_id": tenant.client_id, "service_principal_id": tenant.service_principal_id,
            "users": len(tenant.users), "groups": len(tenant.groups),
            "assignments": len(tenant.assignments), "build_seconds": round(built, 2),
            "config": args.write_config, "control_token_file": sim.control_token_path,
        }), flush=True)
        if args.write_config:
            print(f"simulated tenant at {sim.url}: in another terminal, "
                  f"syncd --config {args.write_config} sync; "
                  "Ctrl-C stops it", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
