"""The audit trail: every cycle's report, stored with a hash chain.

Each cycle row holds its report header as canonical JSON, its entries are stored a thousand to
a row (``chunks.py``); ``hash`` is sha256 over the previous cycle's hash, the header and every
entry's text, so changing one byte of a stored report or entry (or removing a cycle from the
middle) is found by ``audit verify``.

The header also records ``entries_sha256`` (sha256 over the entries alone), so that a
mismatch can be told apart: header changed, or entries changed. ``meta`` keeps
``chain_anchor`` (the hash the oldest kept cycle chains from: the last pruned cycle's, or the
genesis) and ``chain_head`` (the newest cycle's hash, so removing the newest cycles shows too).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..compat import batched
from ..errors import SyncdError
from ..report.chunks import CHUNK, hash_lines, text_of, unpack
from ..report.model import CycleReport, Entries, canonical
from .db import Store
from .schema import insert_chunks

GENESIS = "0" * 64

# columns of `cycles` that repeat fields of the hashed header (for listing and lookup)
_COLUMNS = ("cycle_id", "status", "mode", "dry_run", "trigger", "started_at", "ended_at")
SUMMARY_KEYS = ("cycle_id", "status", "mode", "dry_run", "trigger", "started_at", "ended_at", "counts")


def _texts(entries: Iterable[str]) -> Iterator[bytes]:
    """Entries as chunk texts (``chunks.text_of``): hashed a thousand at a time, the same bytes
    as one entry at a time (140k small updates cost ~0.4 s)."""
    return map(text_of, batched(entries, CHUNK))


def chain_hash(prev_hash: str, header: str, entries: Iterable[str]) -> str:
    """sha256 of prev_hash, then header, then each entry, separated by newlines."""
    return chain_hash_of_texts(prev_hash, header, _texts(entries))


def chain_hash_of_texts(prev_hash: str, header: str, texts: Iterable[bytes]) -> str:
    """``chain_hash`` over the entries' chunk texts (``Entries.texts``)."""
    h = hashlib.sha256()
    h.update(prev_hash.encode())
    h.update(b"\n")
    h.update(header.encode())
    for text in texts:
        h.update(b"\n")
        h.update(text)
    return h.hexdigest()


def entries_hash(entries: Iterable[str]) -> str:
    """sha256 of the entries, each followed by a newline (``Entries.sha256``)."""
    return hash_lines(hashlib.sha256(), _texts(entries)).hexdigest()


def save_report(store: Store, report: CycleReport) -> None:
    """Store a report (call inside the cycle's transaction so it commits with the changes)."""
    c = store.conn
    row = c.execute("SELECT hash FROM cycles ORDER BY seq DESC LIMIT 1").fetchone()
    prev = row[0] if row else store.get_meta("chain_anchor", GENESIS) or GENESIS
    entries = report.entries  # compressed chunks of canonical JSON, their sha256 kept as they were made
    header = canonical({**report.header(), "entries_sha256": entries.sha256()})
    digest = chain_hash_of_texts(prev, header, entries.texts())
    cur = c.execute(
        "INSERT INTO cycles (cycle_id, status, mode, dry_run, trigger, started_at, ended_at, document, entry_count, hash, prev_hash,"
        " interrupted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            report.cycle_id, report.status, report.mode, int(report.dry_run), report.trigger,
            report.started_at, report.ended_at, header, len(entries), digest, prev, int(report.interrupted),
        ),
    )
    assert cur.lastrowid is not None
    insert_chunks(c, cur.lastrowid, entries.packed())
    store.set_meta("chain_head", digest)


def resave_report(store: Store, report: CycleReport) -> None:
    """Store ``report`` again in place of the newest stored cycle, the same one (after a SCIM
    push added its entries, R24): the chain is computed again from the cycle before it."""
    c = store.conn
    with store.transaction():
        row = c.execute("SELECT seq, cycle_id FROM cycles ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None or row[1] != report.cycle_id:
            raise SyncdError(f"cycle {report.cycle_id} is not the newest stored cycle: its report cannot be completed")
        c.execute("DELETE FROM entry_chunks WHERE cycle_seq = ?", (row[0],))
        c.execute("DELETE FROM cycles WHERE seq = ?", (row[0],))
        save_report(store, report)


def _chunks(store: Store, seq: int) -> list[tuple[int, object]]:
    return store.conn.execute(
        "SELECT first_n, entries FROM entry_chunks WHERE cycle_seq = ? ORDER BY first_n", (seq,)
    ).fetchall()


def _stored_entries(store: Store, seq: int) -> list[str]:
    """A cycle's entries, in order, as stored: canonical JSON each."""
    entries: list[str] = []
    for _, stored in _chunks(store, seq):
        try:
            entries += unpack(stored)
        except ValueError as exc:
            cycle_id = store.conn.execute("SELECT cycle_id FROM cycles WHERE seq = ?", (seq,)).fetchone()
            raise SyncdError(
                f"the stored entries of cycle {cycle_id[0] if cycle_id else seq} are damaged ({exc}): "
                "run `syncd audit verify`"
            ) from None
    return entries


def cycle_status(store: Store, cycle_id: str) -> str | None:
    """The status of cycle ``cycle_id``; None if no such cycle was committed."""
    row = store.conn.execute("SELECT status FROM cycles WHERE cycle_id = ?", (cycle_id,)).fetchone()
    return row[0] if row else None


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
    doc["entries"] = Entries.from_raw(_stored_entries(store, row[0]))  # kept as stored
    return CycleReport.from_document(doc)


def parse_time(value: str) -> datetime:
    """An ISO 8601 date or time; without a timezone it is UTC."""
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _matches(started_at: str, status: str, since: datetime | None, status_filter: str | None) -> bool:
    if status_filter is not None and status != status_filter:
        return False
    if since is not None:
        try:
            return parse_time(started_at) >= since
        except ValueError:
            return True  # an unreadable time is shown rather than hidden
    return True


def list_reports(
    store: Store, limit: int | None = None, *, since: datetime | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Cycle summaries (SPEC §4 `reports --json`), newest first."""
    out: list[dict[str, Any]] = []
    for started_at, st, document in store.conn.execute("SELECT started_at, status, document FROM cycles ORDER BY seq DESC"):
        if limit is not None and len(out) >= limit:
            break
        if not _matches(started_at, st, since, status):
            continue
        doc = json.loads(document)
        out.append({k: doc[k] for k in SUMMARY_KEYS})
    return out


def export_reports(store: Store, *, since: datetime | None = None, status: str | None = None) -> Iterator[str]:
    """JSON Lines: one whole cycle document per line (SPEC §4, entries included, oldest first),
    each with its chain hashes, so a SIEM holds what `audit verify` checks against."""
    rows = store.conn.execute("SELECT seq, started_at, status, document, hash, prev_hash FROM cycles ORDER BY seq").fetchall()
    for seq, started_at, st, document, digest, prev in rows:
        if not _matches(started_at, st, since, status):
            continue
        stored = json.loads(document)
        header = CycleReport.from_document(stored).header()  # the same fields as `report --format json`
        header["counts"] = stored.get("counts", {})  # (counted from entries, not loaded here)
        header["chain"] = {"hash": digest, "prev_hash": prev}
        head = json.dumps(header, ensure_ascii=False, separators=(",", ":"))
        # the stored entries are canonical JSON without newlines: spliced in as they are
        yield head[:-1] + ',"entries":[' + ",".join(_stored_entries(store, seq)) + "]}\n"


# --------------------------------------------------------------------------- retention


def prune_reports(store: Store, retention_days: int, now: datetime | None = None) -> int:
    """Remove the oldest reports started more than ``retention_days`` ago (inside a transaction).

    Only a prefix of the chain is removed, never the newest cycle, and ``chain_anchor``
    becomes the hash of the last removed cycle, so the kept chain still verifies.
    """
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    c = store.conn
    newest = c.execute("SELECT max(seq) FROM cycles").fetchone()[0]
    if newest is None:
        return 0
    last: tuple[int, str, str] | None = None
    count = 0
    for seq, cycle_id, started_at, digest in c.execute(
        "SELECT seq, cycle_id, started_at, hash FROM cycles WHERE seq < ? ORDER BY seq", (newest,)
    ):
        try:
            old = parse_time(started_at) < cutoff
        except ValueError:
            old = False
        if not old:
            break
        last = (seq, cycle_id, digest)
        count += 1
    if last is None:
        return 0
    seq, cycle_id, digest = last
    c.execute("DELETE FROM entry_chunks WHERE cycle_seq <= ?", (seq,))
    c.execute("DELETE FROM cycles WHERE seq <= ?", (seq,))
    store.set_meta("chain_anchor", digest)
    store.set_meta("chain_anchor_cycle", cycle_id)
    return count


# --------------------------------------------------------------------------- verification


@dataclass
class Problem:
    cycle_id: str | None
    seq: int | None
    kind: str  # header_changed | entry_changed | entry_missing | entry_added | chain_broken | head_missing
    detail: str


@dataclass
class Verification:
    ok: bool
    cycles: int = 0
    entries: int = 0
    anchor: str = GENESIS
    anchor_cycle: str | None = None
    head: str | None = None
    problem: Problem | None = None
    extra: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        return d


def verify_chain(store: Store) -> Verification:
    """Recompute the chain and every entry; stop at the first cycle that does not match."""
    c = store.conn
    own_txn = not c.in_transaction
    if own_txn:
        c.execute("BEGIN")  # one snapshot: a cycle committing meanwhile is not a false alarm
    try:
        return _verify(store)
    finally:
        if own_txn:
            c.execute("COMMIT")


def _verify(store: Store) -> Verification:
    c = store.conn
    anchor = store.get_meta("chain_anchor", GENESIS) or GENESIS
    result = Verification(ok=True, anchor=anchor, anchor_cycle=store.get_meta("chain_anchor_cycle"))
    prev = anchor
    prev_id: str | None = result.anchor_cycle

    def fail(cycle_id: str | None, seq: int | None, kind: str, detail: str) -> Verification:
        result.ok = False
        result.problem = Problem(cycle_id, seq, kind, detail)
        return result

    for seq, *cols, document, entry_count, digest, prev_hash in c.execute(
        "SELECT seq, cycle_id, status, mode, dry_run, trigger, started_at, ended_at, document, entry_count, hash, prev_hash"
        " FROM cycles ORDER BY seq"
    ).fetchall():
        cycle_id = cols[0]
        if prev_hash != prev:
            where = f"cycle {prev_id}" if prev_id else "the chain's anchor"
            return fail(cycle_id, seq, "chain_broken",
                        f"its prev_hash does not match {where}: a cycle before it was removed, or a stored hash was altered")
        entries: list[str] = []
        for first, stored in _chunks(store, seq):
            if first > len(entries):
                return fail(cycle_id, seq, "entry_missing",
                            f"entries {len(entries) + 1}–{first} of its {entry_count} are missing (a chunk was removed)")
            if first < len(entries):
                return fail(cycle_id, seq, "entry_added", f"entries were added (a chunk overlaps entry {first + 1})")
            try:
                entries += unpack(stored)
            except ValueError as exc:
                return fail(cycle_id, seq, "entry_changed", f"entries from entry {first + 1} on were altered: {exc}")
        if len(entries) < entry_count:
            return fail(cycle_id, seq, "entry_missing",
                        f"{entry_count - len(entries)} of its {entry_count} entries are missing (first: entry {len(entries) + 1})")
        if len(entries) > entry_count:
            return fail(cycle_id, seq, "entry_added",
                        f"{len(entries) - entry_count} entries were added (first: entry {entry_count + 1})")
        try:
            header = json.loads(document)
        except ValueError:
            return fail(cycle_id, seq, "header_changed", "its stored header is not valid JSON")
        if chain_hash(prev, document, entries) != digest:
            return fail(cycle_id, seq, *_diagnose(header, document, entries))
        # the columns used to find and list cycles must say what the hashed header says
        for name, value in zip(_COLUMNS, cols, strict=True):
            want = int(header.get(name)) if name == "dry_run" and isinstance(header.get(name), bool) else header.get(name)
            if value != want:
                return fail(cycle_id, seq, "header_changed", f"column {name} reads {value!r}, its hashed report says {want!r}")
        result.cycles += 1
        result.entries += entry_count
        prev, prev_id = digest, cycle_id

    orphans = c.execute("SELECT count(*) FROM entry_chunks WHERE cycle_seq NOT IN (SELECT seq FROM cycles)").fetchone()[0]
    if orphans:
        return fail(None, None, "chain_broken", f"{orphans} chunks of entries belong to no stored cycle: a cycle was removed")
    head = store.get_meta("chain_head")
    result.head = prev if result.cycles else head
    if head is not None and head != prev:
        return fail(prev_id, None, "head_missing",
                    "the newest stored cycle is not the last one recorded: cycles after it were removed")
    return result


def _diagnose(header: dict[str, Any], document: str, entries: list[str]) -> tuple[str, str]:
    """Why a cycle's hash does not match: its header or one of its entries."""
    for n, e in enumerate(entries):
        try:
            if canonical(json.loads(e)) != e:
                return "entry_changed", f"entry {n + 1} is not as it was written (not canonical JSON)"
        except ValueError:
            return "entry_changed", f"entry {n + 1} is not valid JSON"
    recorded = header.get("entries_sha256")
    if canonical(header) != document:
        return "header_changed", "its stored header is not as it was written (not canonical JSON)"
    if recorded is not None and recorded != entries_hash(entries):
        counts = Entries.from_raw(entries).counts()
        hint = "" if counts == header.get("counts") else " (the counts no longer add up)"
        return "entry_changed", f"its entries do not match the digest recorded in its header{hint}"
    if recorded is not None:
        return "header_changed", "its header does not match its hash (the entries do)"
    return "header_changed", "its header or entries do not match its hash"


def last_user_entry(store: Store, entra_id: str | None, local_id: int | None) -> dict[str, Any] | None:
    """The newest entry of a committed cycle about this user (with its cycle's id, end, mode
    and trigger), reading the stored chunks only as far back as needed."""
    if not entra_id and local_id is None:
        return None
    needle = entra_id if entra_id else f'"local_id":{local_id}'
    chunks = store.conn.execute(
        "SELECT c.cycle_id, c.ended_at, c.mode, c.trigger, e.entries FROM entry_chunks e JOIN cycles c ON c.seq = e.cycle_seq"
        " WHERE c.dry_run = 0 ORDER BY e.cycle_seq DESC, e.first_n DESC"
    )
    for cycle_id, ended_at, mode, trigger, stored in chunks:  # newest first, read only as far as needed
        try:
            entries = unpack(stored)
        except ValueError:
            continue  # a damaged chunk is `audit verify`'s to report
        for raw in reversed(entries):
            if needle not in raw:
                continue
            entry = json.loads(raw)
            if entry.get("object_type") != "user" or entry.get("target", "local") != "local":  # (not a push's entry)
                continue
            if (entra_id and entry.get("entra_id") == entra_id) or (local_id is not None and entry.get("local_id") == local_id):
                return {**entry, "cycle_id": cycle_id, "ended_at": ended_at, "mode": mode, "trigger": trigger}
    return None


def last_cycle(store: Store) -> dict[str, Any] | None:
    """The newest cycle that was not a dry run (a failed one included): its id, status, end
    and errors."""
    row = store.conn.execute(
        "SELECT cycle_id, status, ended_at, document FROM cycles WHERE dry_run = 0 ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return {"cycle_id": row[0], "status": row[1], "ended_at": row[2], "errors": json.loads(row[3]).get("errors", [])}


def last_success_at(store: Store) -> str | None:
    """When the newest cycle that was neither a dry run nor failed ended."""
    row = store.conn.execute(
        "SELECT ended_at FROM cycles WHERE dry_run = 0 AND status != 'failed' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def consecutive_failures(store: Store) -> int:
    """Failed cycles in a row, as the service's health: dry runs, an operator's on-demand
    tries (a mistyped --user) and cycles the service itself stopped neither count nor end
    the run."""
    n = 0
    for (status,) in store.conn.execute(
        "SELECT status FROM cycles WHERE dry_run = 0 AND mode != 'on_demand' AND interrupted = 0 ORDER BY seq DESC LIMIT 1000"
    ):
        if status != "failed":
            break
        n += 1
    return n


def cycle_totals(store: Store) -> tuple[dict[str, int], int, int]:
    """Over the stored cycles that were not dry runs: how many ended with each status, and
    the Graph requests and throttled answers they made."""
    c = store.conn
    statuses = dict(c.execute("SELECT status, count(*) FROM cycles WHERE dry_run = 0 GROUP BY status").fetchall())
    requests, throttled = c.execute(
        "SELECT coalesce(sum(json_extract(document, '$.graph_requests')), 0),"
        " coalesce(sum(json_extract(document, '$.throttled')), 0) FROM cycles WHERE dry_run = 0"
    ).fetchone()
    return statuses, int(requests), int(throttled)


def last_mirroring_cycle(store: Store) -> dict[str, Any] | None:
    """The last cycle that read Entra ID whole or by delta and committed: what the mirror is as of."""
    row = store.conn.execute(
        "SELECT cycle_id, ended_at, mode FROM cycles WHERE dry_run = 0 AND status != 'failed' AND mode != 'on_demand'"
        " ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return {"cycle_id": row[0], "ended_at": row[1], "mode": row[2]} if row else None
