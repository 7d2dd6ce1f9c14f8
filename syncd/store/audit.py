"""The audit trail: every cycle's report, stored with a hash chain.

Each cycle row holds its report header as canonical JSON, each entry its own row; ``hash`` is
sha256 over the previous cycle's hash, the header and every entry, so changing one byte of a
stored report or entry (or removing a cycle from the middle) is found by ``audit verify``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import SyncdError
from ..report.model import CycleReport
from .db import Store

GENESIS = "0" * 64


def canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, header: str, entries: list[str]) -> str:
    h = hashlib.sha256()
    h.update(prev_hash.encode())
    h.update(b"\n")
    h.update(header.encode())
    for e in entries:
        h.update(b"\n")
        h.update(e.encode())
    return h.hexdigest()


def save_report(store: Store, report: CycleReport) -> None:
    """Store a report (call inside the cycle's transaction so it commits with the changes)."""
    c = store.conn
    row = c.execute("SELECT hash FROM cycles ORDER BY seq DESC LIMIT 1").fetchone()
    prev = row[0] if row else store.get_meta("chain_anchor", GENESIS) or GENESIS
    header = canonical(report.header())
    entries = [canonical(e) for e in report.entries]
    digest = chain_hash(prev, header, entries)
    cur = c.execute(
        "INSERT INTO cycles (cycle_id, status, mode, dry_run, trigger, started_at, ended_at, document, entry_count, hash, prev_hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            report.cycle_id, report.status, report.mode, int(report.dry_run), report.trigger,
            report.started_at, report.ended_at, header, len(entries), digest, prev,
        ),
    )
    seq = cur.lastrowid
    c.executemany("INSERT INTO entries (cycle_seq, n, entry) VALUES (?, ?, ?)", ((seq, n, e) for n, e in enumerate(entries)))


def load_report(store: Store, cycle_id: str = "latest") -> CycleReport:
    c = store.conn
    if cycle_id == "latest":
        row = c.execute("SELECT seq, document FROM cycles ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            raise SyncdError("no cycle has run yet: run `syncd sync` (or `syncd sync --dry-run`)")
    else:
        row = c.execute("SELECT seq, document FROM cycles WHERE cycle_id = ?", (cycle_id,)).fetchone()
        if row is None:
            raise SyncdError(f"no cycle {cycle_id!r}: `syncd reports` lists them")
    doc = json.loads(row[1])
    doc["entries"] = [json.loads(r[0]) for r in c.execute("SELECT entry FROM entries WHERE cycle_seq = ? ORDER BY n", (row[0],))]
    return CycleReport.from_document(doc)


def list_reports(store: Store, limit: int | None = None) -> list[dict[str, Any]]:
    sql = "SELECT document FROM cycles ORDER BY seq DESC"
    args: tuple = ()
    if limit is not None:
        sql += " LIMIT ?"
        args = (limit,)
    out = []
    for (document,) in store.conn.execute(sql, args):
        doc = json.loads(document)
        out.append({k: doc[k] for k in ("cycle_id", "status", "mode", "dry_run", "trigger", "started_at", "ended_at", "counts")})
    return out
