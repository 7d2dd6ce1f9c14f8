"""The floor: the least work any pull-based sync must do for one full read.

Downloads the same page chains a full cycle reads, with plain httpx and no SDK
(the three independent chains, assignments, users/delta and groups/delta, in parallel on
one event loop), parses each page with ``json.loads``, and inserts the same mirror rows
syncd keeps (users, groups, direct members, assignments) into a fresh SQLite file in one
transaction, with the pragmas syncd uses (16 KB pages, WAL, synchronous=FULL, 32 MB page cache).

Run as its own process by ``bench/run.py`` (so that it pays interpreter start-up like the
CLI does and never shares a GIL with the simulator):

    python bench/floor.py --url URL --tenant T --client-id C --secret-file F --ca CA \\
        --db /tmp/floor.db --start assignments=URL --start users=URL --start groups=URL

Prints one JSON line: wall seconds (from process start), per-chain pages and seconds,
requests, rows.
"""

from __future__ import annotations

import time

T0 = time.monotonic()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import ssl  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

PREFER = {"Prefer": "odata.maxpagesize=999"}


async def chain(client: httpx.AsyncClient, name: str, url: str, token: str, sink: list[Any],
                stats: dict[str, Any]) -> None:
    t = time.monotonic()
    pages = 0
    headers = {"Authorization": f"Bearer {token}", **PREFER}
    next_url: str | None = url
    while next_url:
        r = await client.get(next_url, headers=headers)
        r.raise_for_status()
        data = json.loads(r.content)
        pages += 1
        sink.extend(data.get("value") or ())
        next_url = data.get("@odata.nextLink")
    stats[name] = {"pages": pages, "seconds": round(time.monotonic() - t, 3)}


def member_type(item: dict[str, Any]) -> str:
    t = (item.get("@odata.type") or "").lower()
    return "user" if t.endswith("user") else "group" if t.endswith("group") else "other"


def insert(db: str, assignments: list, users: list, groups: list) -> dict[str, int]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA page_size = 16384")  # as syncd's store
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -32768")  # as syncd's store
    conn.executescript("""
        CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, upn TEXT, display_name TEXT, mail TEXT,
            enabled INTEGER NOT NULL, user_type TEXT) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, display_name TEXT,
            security_enabled INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS members (group_id TEXT NOT NULL, member_id TEXT NOT NULL,
            member_type TEXT NOT NULL, PRIMARY KEY (group_id, member_id)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS assignments (principal_id TEXT PRIMARY KEY,
            principal_type TEXT NOT NULL) WITHOUT ROWID;
    """)
    members = []
    for g in groups:
        for m in g.get("members@delta") or ():
            if "@removed" not in m:
                members.append((g["id"], m["id"], member_type(m)))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?, ?, ?)",
        ((u["id"], u.get("userPrincipalName"), u.get("displayName"), u.get("mail"),
          int(bool(u.get("accountEnabled"))), u.get("userType")) for u in users if "@removed" not in u),
    )
    # one big group can span pages: the same group id comes back, merge (INSERT OR REPLACE)
    conn.executemany(
        "INSERT OR REPLACE INTO groups VALUES (?, ?, ?)",
        ((g["id"], g.get("displayName"), int(bool(g.get("securityEnabled", True))))
         for g in groups if "@removed" not in g),
    )
    conn.executemany("INSERT OR REPLACE INTO members VALUES (?, ?, ?)", members)
    conn.executemany(
        "INSERT OR REPLACE INTO assignments VALUES (?, ?)",
        ((a["principalId"], a["principalType"]) for a in assignments),
    )
    conn.execute("COMMIT")
    conn.close()
    return {"users": len(users), "groups": len(groups), "members": len(members),
            "assignments": len(assignments)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=args.ca)
    starts = dict(s.split("=", 1) for s in args.start)
    async with httpx.AsyncClient(verify=ctx, timeout=120, trust_env=False,
                                 limits=httpx.Limits(max_connections=8)) as client:
        r = await client.post(
            f"{args.url}/{args.tenant}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": args.client_id,
                  "client_secret": Path(args.secret_file).read_text().strip(),
                  "scope": f"{args.url}/.default"},
        )
        r.raise_for_status()
        token = r.json()["access_token"]
        sinks: dict[str, list[Any]] = {k: [] for k in starts}
        stats: dict[str, Any] = {}
        t_dl = time.monotonic()
        await asyncio.gather(*(chain(client, k, u, token, sinks[k], stats) for k, u in starts.items()))
        download = time.monotonic() - t_dl
    t_ins = time.monotonic()
    rows = insert(args.db, sinks.get("assignments", []), sinks.get("users", []), sinks.get("groups", []))
    return {"download_s": round(download, 3), "insert_s": round(time.monotonic() - t_ins, 3),
            "chains": stats, "rows": rows,
            "requests": sum(s["pages"] for s in stats.values())}


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("--url", "--tenant", "--client-id", "--secret-file", "--ca", "--db"):
        p.add_argument(name, required=True)
    p.add_argument("--start", action="append", default=[], help="NAME=URL of a chain's first page")
    args = p.parse_args()
    if os.path.exists(args.db):
        os.unlink(args.db)
    out = asyncio.run(main_async(args))
    out["wall_s"] = round(time.monotonic() - T0, 3)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
