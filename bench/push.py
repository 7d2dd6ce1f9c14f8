"""The SCIM push at tenant scale, against a floor measured in the same run (issue 20).

    python bench/push.py                         # 10k users, 200 groups, ~10k memberships
    python bench/push.py --users 2000 --latency 0.05 --json /tmp/push.json

A tenant from ``syncd.simulator.generate`` (N users, N/50 groups of 50 direct members,
every user assigned: the local directory holds all N), served by the simulator in a thread
of this process; scim2-server (the real CLI, ``--flavour bulk``: its defaults, Bulk of 1000
operations; ``patch``: PATCH, no Bulk, plain requests ``concurrency`` at a time) as its own
process, a fresh one for every measurement, always behind a recording proxy in this
process (``tests/push/proxy.py`` with a per-request delay added for ``--latency``).

Measured:

1. ``syncd sync`` (the CLI, through ``spawn.py``) on a fresh store, no application: the
   local directory, and the peak RSS of a cycle without an application;
2. the push alone: a child process loads that directory (a copy of the store) and calls
   ``push_application`` (full reconcile, as the first cycle does); its time is from the
   call to its return; the proxy records every request (method, path, body) and answer;
3. the floor: the recorded requests replayed by a child with plain httpx, the same
   concurrency (``[[scim]] concurrency``), against a fresh scim2-server behind the same
   proxy; ids the first server gave are swapped for the ones the fresh server gives, and a
   request that names such an id waits for the request whose answer gave it (users before
   their groups, as any client must); time from the first request to the last answer;
4. (2) and (3) again with ``--latency`` seconds added by the proxy to every request;
5. ``syncd sync`` on a fresh store with a ``[[scim]]`` application: the first push inside
   the cycle, and its peak RSS against (1); then a cycle with no change and one with 100
   users changed (10 of them disabled, leaving their groups), requests counted at the proxy.
"""

from __future__ import annotations

import time

T0 = time.monotonic()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TARGET_PUSH_RATIO = 1.5
TARGET_LATENCY_RATIO = 1.2
TARGET_RSS_DELTA_MB = 50
TENANT_PATH = "/bench/v2"
ID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


# --------------------------------------------------------------------------- children


def child_push(config_path: str) -> None:
    """The push alone, in a process of its own: load the directory, push, print figures."""
    from syncd import config as cfg
    from syncd.push.engine import push_application
    from syncd.push.scim import Options
    from syncd.store.db import Store

    config = cfg.load(config_path)
    store = Store(config.store_path)
    directory = store.load_directory()
    t = time.monotonic()
    out = push_application(config.scim[0], store.conn, directory, cycle_id="bench-push", full_reconcile=True,
                           options=Options())
    push_s = time.monotonic() - t
    store.close()
    print(json.dumps({"push_s": round(push_s, 3), "requests": out.requests, "status": out.status,
                      "counts": out.counts, "errors": out.errors[:5], "wall_s": round(time.monotonic() - T0, 3)}))


async def _replay(requests: list[dict[str, Any]], base: str, token: str, concurrency: int) -> dict[str, Any]:
    import httpx

    produced: dict[str, int] = {}  # an id the recorded server gave -> the request whose answer gave it
    deps: list[set[int]] = []
    for i, r in enumerate(requests):
        text = r["target"] + (r["body"] or "")
        deps.append({produced[x] for x in ID.findall(text) if x in produced})
        for x in ID.findall(r["answer"] or ""):
            produced.setdefault(x, i)
    done = [asyncio.Event() for _ in requests]
    mapping: dict[str, str] = {}
    sem = asyncio.Semaphore(concurrency)
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json",
               "Accept": "application/scim+json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, trust_env=False, limits=limits) as client:

        async def one(i: int, r: dict[str, Any]) -> None:
            for d in deps[i]:
                await done[d].wait()
            target, body = r["target"], r["body"]
            if deps[i]:
                swap = lambda m: mapping.get(m.group(0), m.group(0))  # noqa: E731
                target = ID.sub(swap, target)
                body = ID.sub(swap, body) if body else body
            async with sem:
                resp = await client.request(r["method"], target, content=body.encode() if body else None)
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if r["answer"]:
                for old, new in zip(ID.findall(r["answer"]), ID.findall(resp.text), strict=False):
                    mapping[old] = new
            done[i].set()

        t = time.monotonic()
        await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        floor_s = time.monotonic() - t
    return {"floor_s": round(floor_s, 3), "requests": len(requests), "statuses": statuses}


def child_floor(path: str, base: str, token: str, concurrency: int) -> None:
    requests = json.loads(Path(path).read_text())
    out = asyncio.run(_replay(requests, base, token, concurrency))
    out["wall_s"] = round(time.monotonic() - T0, 3)
    print(json.dumps(out))


# --------------------------------------------------------------------------- the bench side


def recording_proxy(upstream: str, latency: float):
    from tests.push.proxy import FaultProxy

    class RecordingProxy(FaultProxy):
        """Forwards every request after ``latency`` seconds; keeps method, target, body, answer."""

        def __init__(self, upstream: str) -> None:
            self.recorded: list[dict[str, Any]] = []
            super().__init__(upstream)

        def _forward(self, method, target, headers, body):
            if latency:
                time.sleep(latency)
            t = time.monotonic()
            status, rheaders, data = super()._forward(method, target, headers, body)
            with self._lock:
                self.recorded.append({"method": method, "target": target, "body": body.decode() if body else None,
                                      "status": status, "answer": data.decode(errors="replace") if data else None,
                                      "server_s": time.monotonic() - t})
            return status, rheaders, data

    return RecordingProxy(upstream)


class Scim:
    """A fresh scim2-server behind a recording proxy."""

    def __init__(self, flavour: str, work: Path, latency: float) -> None:
        from tests.push.conftest import TOKEN, start_server

        self.server = start_server(flavour, work)
        # warm it up on a tenant of its own (its first answers are slow), so that neither the
        # push nor the floor pays for that
        import httpx

        with httpx.Client(base_url=f"http://127.0.0.1:{self.server.port}/warm/v2/", trust_env=False,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            for path in ("ServiceProviderConfig", "Users", "Groups"):
                c.get(path).raise_for_status()
        self.proxy = recording_proxy(f"http://127.0.0.1:{self.server.port}", latency)
        self.base = self.proxy.url(TENANT_PATH)

    def count(self) -> int:
        return len(self.proxy.recorded)

    def close(self) -> None:
        self.proxy.close()
        self.server.process.terminate()
        self.server.process.wait(timeout=10)


def build(users: int, seed: int = 1):
    from syncd.simulator.generate import generate_tenant

    t = generate_tenant(users, max(1, users // 50), 50, guests=users // 100, disabled=users // 100,
                        assign="groups", seed=seed)
    in_groups: set[str] = set()
    for g in t.groups.values():
        in_groups.update(g.members)
    with t.bulk_load():
        for uid in t.users:
            if uid not in in_groups:
                t._assign_unchecked(uid, "User", "2025-01-01T00:00:00Z")
    return t


def scim_table(base: str, token_file: Path, concurrency: int) -> str:
    return (f'\n[[scim]]\nname = "bench"\nbase_url = "{base}"\ntoken_file = "{token_file}"\n'
            f"deactivation_threshold = 0\nconcurrency = {concurrency}\n")


def members_of(db: Path) -> dict[str, frozenset[int]]:
    from syncd.store.db import Store

    store = Store(str(db), create=False)
    try:
        d = store.load_directory()
        return {g.entra_id or str(g.id): frozenset(d.members.get(g.id, ())) for g in d.groups.values() if g.managed}
    finally:
        store.close()


def timed_pair(args, work: Path, base_db: Path, token_file: Path, latency: float, tag: str) -> dict[str, Any]:
    """The push alone against a fresh server, then the floor replaying its requests against another."""
    from run import run

    from tests.push.conftest import TOKEN

    db = work / f"push-{tag}.db"
    shutil.copy(base_db, db)
    scim = Scim(args.flavour, work, latency)
    try:
        config = work / f"push-{tag}.toml"
        config.write_text(args.sim_toml(db) + scim_table(scim.base, token_file, args.concurrency))
        r = run([sys.executable, __file__, "--child-push", str(config)])
        if r.code != 0:
            raise SystemExit(f"push child failed: {r.err[-3000:]}")
        push = r.json()
        recorded = list(scim.proxy.recorded)
    finally:
        scim.close()
    reqs = work / f"requests-{tag}.json"
    reqs.write_text(json.dumps(recorded))
    scim = Scim(args.flavour, work, latency)
    try:
        fr = run([sys.executable, __file__, "--child-floor", str(reqs), scim.proxy.url(), TOKEN, str(args.concurrency)])
        if fr.code != 0:
            raise SystemExit(f"floor child failed: {fr.err[-3000:]}")
        floor = fr.json()
        floor_server_s = sum(x["server_s"] for x in scim.proxy.recorded)
    finally:
        scim.close()
    methods: dict[str, int] = {}
    for x in recorded:
        k = f"{x['method']} {x['target'].split('?')[0].removeprefix(TENANT_PATH).split('/')[1]}"
        methods[k] = methods.get(k, 0) + 1
    push_server_s = sum(x["server_s"] for x in recorded)
    print(f"  [{tag}] push {push['push_s']:.2f}s ({push['requests']} requests, {push['status']}, {push['counts']}) "
          f"rss {r.rss_mb:.0f} MB; floor {floor['floor_s']:.2f}s ({floor['statuses']}); requests {methods}; "
          f"the server's answers took {push_server_s:.2f}s in all for the push, {floor_server_s:.2f}s for the floor",
          flush=True)
    bad = {s: n for s, n in floor["statuses"].items() if int(s) >= 300}
    if bad:
        print(f"  [{tag}] WARNING: the floor's replay got {bad}", flush=True)
    return {"push_s": push["push_s"], "push_requests": push["requests"], "push_status": push["status"],
            "push_counts": push["counts"], "push_errors": push["errors"], "floor_s": floor["floor_s"],
            "floor_statuses": floor["statuses"], "requests": methods,
            "push_server_s": round(push_server_s, 3), "floor_server_s": round(floor_server_s, 3),
            "ratio": round(push["push_s"] / floor["floor_s"], 2)}


def best_pair(args, work: Path, base_db: Path, token_file: Path, latency: float, tag: str) -> dict[str, Any]:
    """Best of ``--repeat`` for the push and for the floor alike (each run's ratio kept too)."""
    runs = [timed_pair(args, work, base_db, token_file, latency, f"{tag} #{i + 1}") for i in range(args.repeat)]
    out = dict(min(runs, key=lambda x: x["push_s"]))
    floor = min(runs, key=lambda x: x["floor_s"])
    out.update(floor_s=floor["floor_s"], floor_server_s=floor["floor_server_s"],
               ratio=round(out["push_s"] / floor["floor_s"], 2), pair_ratios=[x["ratio"] for x in runs])
    return out


def bench(args) -> tuple[dict[str, Any], list[tuple[str, str, bool]]]:
    from run import change_users, run

    from syncd.simulator import Simulator
    from tests.push.conftest import TOKEN

    f: dict[str, Any] = {}
    checks: list[tuple[str, str, bool]] = []
    t = build(args.users)
    f["tenant"] = {"users": len(t.users), "groups": len(t.groups),
                   "memberships": sum(len(g.members) for g in t.groups.values())}
    print(f"tenant: {f['tenant']}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-push-"))
    token_file = work / "scim-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)

    def sync(config: Path):
        r = run([sys.executable, "-m", "syncd", "sync", "--json", "--config", str(config)])
        if r.code not in (0, 3):
            raise SystemExit(f"syncd sync exited {r.code}: {r.err[-3000:]}")
        return r, r.json()

    try:
        with Simulator(t) as sim:
            args.sim_toml = lambda db: sim.config_toml(str(db))
            # 1. the cycle without an application: the directory, and the RSS to compare with
            base_db = work / "base.db"
            config = work / "noapp.toml"
            config.write_text(sim.config_toml(str(base_db)))
            r0, rep0 = sync(config)
            f["noapp_cycle_s"] = round(r0.wall, 2)
            f["noapp_rss_mb"] = round(r0.rss_mb, 1)
            print(f"  cycle, no application: {r0.wall:.2f}s rss {r0.rss_mb:.0f} MB status {rep0['status']}", flush=True)

            # 2-4. the push alone, and its floor, without and with latency
            f["push"] = best_pair(args, work, base_db, token_file, 0.0, "0ms")
            p = f["push"]
            checks.append((f"first push <= {TARGET_PUSH_RATIO} x floor",
                           f"{p['push_s']:.2f}s vs floor {p['floor_s']:.2f}s = {p['ratio']}x", p["ratio"] <= TARGET_PUSH_RATIO))
            if args.latency:
                f["latency"] = best_pair(args, work, base_db, token_file, args.latency, f"{args.latency * 1000:.0f}ms")
                q = f["latency"]
                checks.append((f"first push, {args.latency * 1000:.0f} ms/request <= {TARGET_LATENCY_RATIO} x floor",
                               f"{q['push_s']:.2f}s vs floor {q['floor_s']:.2f}s = {q['ratio']}x",
                               q["ratio"] <= TARGET_LATENCY_RATIO))

            # 5. the CLI with an application: RSS of the first push, then no change, then 100 changed
            scim = Scim(args.flavour, work, 0.0)
            try:
                db = work / "app.db"
                config = work / "app.toml"
                config.write_text(sim.config_toml(str(db)) + scim_table(scim.base, token_file, args.concurrency))
                r1, rep1 = sync(config)
                f["app_cycle_s"] = round(r1.wall, 2)
                f["app_rss_mb"] = round(r1.rss_mb, 1)
                f["app_cycle_push_s"] = rep1.get("phases", {}).get("push")
                f["app_cycle_requests"] = scim.count()
                print(f"  cycle with the application: {r1.wall:.2f}s (push {f['app_cycle_push_s']}s, "
                      f"{scim.count()} requests) rss {r1.rss_mb:.0f} MB status {rep1['status']} apps {rep1.get('apps')}",
                      flush=True)
                delta = r1.rss_mb - r0.rss_mb
                checks.append((f"peak RSS, first push <= {TARGET_RSS_DELTA_MB} MB above the cycle without an application",
                               f"{r1.rss_mb:.0f} MB vs {r0.rss_mb:.0f} MB = +{delta:.0f} MB", delta <= TARGET_RSS_DELTA_MB))

                n = scim.count()
                r2, rep2 = sync(config)
                f["nochange_requests"] = scim.count() - n
                f["nochange_s"] = round(r2.wall, 2)
                print(f"  no change: {r2.wall:.2f}s, {f['nochange_requests']} requests, apps {rep2.get('apps')}", flush=True)
                checks.append(("no-change cycle: 0 requests", str(f["nochange_requests"]), f["nochange_requests"] == 0))

                before = members_of(db)
                changed = change_users(sim.tenant, 100 / len(t.users), seed=7)
                n = scim.count()
                r3, rep3 = sync(config)
                after = members_of(db)
                groups_changed = sum(1 for g in set(before) | set(after) if before.get(g) != after.get(g))
                f["changed_users"] = changed
                f["changed_groups"] = groups_changed
                f["changed_requests"] = scim.count() - n
                f["changed_s"] = round(r3.wall, 2)
                f["changed_methods"] = sorted({f"{x['method']} {x['target'].split('?')[0]}"
                                               for x in scim.proxy.recorded[n:]})[:10]
                limit = changed + groups_changed
                print(f"  {changed} users changed ({groups_changed} groups' members changed): {r3.wall:.2f}s, "
                      f"{f['changed_requests']} requests, apps {rep3.get('apps')}", flush=True)
                checks.append((f"{changed} users changed: <= {changed} + {groups_changed} groups = {limit} requests",
                               str(f["changed_requests"]), f["changed_requests"] <= limit))
            finally:
                scim.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return f, checks


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child-push":
        child_push(sys.argv[2])
        return 0
    if len(sys.argv) > 2 and sys.argv[1] == "--child-floor":
        child_floor(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--latency", type=float, default=0.05, help="seconds the proxy adds per request (0: skip)")
    p.add_argument("--flavour", choices=["bulk", "patch"], default="bulk",
                   help="scim2-server's ServiceProviderConfig: bulk (its defaults) or patch (no Bulk)")
    p.add_argument("--concurrency", type=int, default=4, help="[[scim]] concurrency, and the floor's")
    p.add_argument("--repeat", type=int, default=1, help="best of N, for the push and the floor alike")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args()
    f, checks = bench(args)
    print("\n================ summary ================")
    print(f"{args.users:,} users, scim2-server flavour {args.flavour}, concurrency {args.concurrency} (tenant {f['tenant']})")
    rows = [("push", "first push"), ("latency", f"first push, {args.latency * 1000:.0f} ms/request")]
    for key, label in rows:
        if key in f:
            x = f[key]
            print(f"  {label:<32} {x['push_s']:8.2f}s   floor {x['floor_s']:8.2f}s   {x['ratio']:5.2f} x floor   "
                  f"{x['push_requests']} requests")
            print(f"  {'':<32} the server's own answer time: push {x['push_server_s']:.2f}s, floor {x['floor_server_s']:.2f}s; "
                  f"run by run ratios {x['pair_ratios']}")
    print(f"  peak RSS: cycle without an application {f['noapp_rss_mb']:.0f} MB, with one {f['app_rss_mb']:.0f} MB")
    print(f"  no change: {f['nochange_requests']} requests; {f['changed_users']} users changed: "
          f"{f['changed_requests']} requests ({f['changed_groups']} groups' members changed)")
    for label, value, ok in checks:
        print(f"  [{'PASS' if ok else 'MISS'}] {label}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps({"users": args.users, "flavour": args.flavour, "latency": args.latency,
                                               "concurrency": args.concurrency, "figures": f, "checks": checks}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
