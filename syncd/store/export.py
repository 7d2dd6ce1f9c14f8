"""`syncd reports export --sqlite FILE`: the audit trail as a plain SQLite database.

The store keeps each report's entries compressed, a thousand to a row, behind a hash chain:
right for keeping them, useless for browsing. The export writes them out one row per entry
with sqlite-utils, so that Datasette (`datasette FILE`) and the sqlite-utils command line
(`sqlite-utils search FILE entries alice`) read them as they are:

- ``cycles``: one row per cycle (the report's header: status, mode, counts, errors, notes,
  its chain hashes), keyed by ``cycle_id``;
- ``entries``: one row per entry (``cycle_id``, ``n`` and every field of the entry; ``modified``
  as JSON), with a foreign key to ``cycles`` and full-text search over the names, ids and
  reasons (``entries_fts``);
- ``export``: when, from which store, by which syncd.

The file is written beside FILE and renamed over it when complete, mode 0600 (it names
users). An earlier export at FILE is replaced; any other file there is refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .audit import _matches, _stored_entries
from .db import Store

MARKER = "export"
FTS_COLUMNS = ["name", "entra_id", "reason", "action", "status"]


def _is_export(path: Path) -> bool:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM export WHERE key = 'format'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "syncd-reports-export"


def export_sqlite(store: Store, target: str, *, since: datetime | None = None, status: str | None = None) -> tuple[int, int]:
    """Write the cycles (and their entries) that match to ``target``; (cycles, entries) written."""
    import sqlite_utils

    path = Path(target)
    if path.exists() and not _is_export(path):
        raise UsageError(f"--sqlite {target}: the file exists and is not a syncd export: remove it or choose another name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    counted = {"cycles": 0, "entries": 0}
    try:
        db = sqlite_utils.Database(tmp, execute_plugins=False)
        try:
            c = store.conn
            own = not c.in_transaction
            if own:
                c.execute("BEGIN")  # one snapshot of the store
            try:
                with db.atomic():
                    _create(db)
                    for cycle, entries in _cycles(store, since, status):
                        db.table("cycles").insert(cycle)
                        db.table("entries").insert_all(_counting(entries, counted), batch_size=500)
                        counted["cycles"] += 1
                    info: list[dict[str, Any]] = [
                        {"key": "format", "value": "syncd-reports-export"},
                        {"key": "exported_at", "value": datetime.now(UTC).isoformat(timespec="seconds")},
                        {"key": "store", "value": str(store.path)},
                        {"key": "syncd_version", "value": _version()},
                        {"key": "since", "value": since.isoformat() if since else None},
                        {"key": "status", "value": status},
                    ]
                    db.table("export").insert_all(info)
            finally:
                if own:
                    c.execute("COMMIT")
            db.table("entries").enable_fts(FTS_COLUMNS, create_triggers=False, tokenize="porter")
            db.execute("VACUUM")
        finally:
            db.close()
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"--sqlite {target}: cannot write it: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return counted["cycles"], counted["entries"]


def _counting(entries: Iterator[dict[str, Any]], counted: dict[str, int]) -> Iterator[dict[str, Any]]:
    for entry in entries:
        counted["entries"] += 1
        yield entry


def _create(db: Any) -> None:
    db["cycles"].create(
        {
            "cycle_id": str, "seq": int, "status": str, "mode": str, "dry_run": bool, "trigger": str,
            "started_at": str, "ended_at": str, "graph_requests": int, "throttled": int, "entry_count": int,
            "counts": str, "errors": str, "notes": str, "phases": str, "hash": str, "prev_hash": str,
        },
        pk="cycle_id",
    )
    db["entries"].create(
        {
            "cycle_id": str, "n": int, "change_id": str, "action": str, "object_type": str, "entra_id": str,
            "name": str, "local_id": int, "status": str, "reason": str, "modified": str,
        },
        pk=("cycle_id", "n"),
        foreign_keys=[("cycle_id", "cycles", "cycle_id")],
    )
    db["entries"].create_index(["entra_id"])
    db["entries"].create_index(["action", "status"])
    db["cycles"].create_index(["started_at"])
    db["export"].create({"key": str, "value": str}, pk="key")


def _cycles(store: Store, since: datetime | None, status: str | None) -> Iterator[tuple[dict[str, Any], Iterator[dict[str, Any]]]]:
    rows = store.conn.execute(
        "SELECT seq, cycle_id, status, mode, dry_run, trigger, started_at, ended_at, document, entry_count, hash, prev_hash"
        " FROM cycles ORDER BY seq"
    ).fetchall()
    for seq, cycle_id, st, mode, dry_run, trigger, started_at, ended_at, document, entry_count, digest, prev in rows:
        if not _matches(started_at, st, since, status):
            continue
        doc = json.loads(document)
        cycle = {
            "cycle_id": cycle_id, "seq": seq, "status": st, "mode": mode, "dry_run": bool(dry_run), "trigger": trigger,
            "started_at": started_at, "ended_at": ended_at, "graph_requests": doc.get("graph_requests", 0),
            "throttled": doc.get("throttled", 0), "entry_count": entry_count,
            "counts": json.dumps(doc.get("counts", {}), ensure_ascii=False),
            "errors": json.dumps(doc.get("errors", []), ensure_ascii=False),
            "notes": json.dumps(doc.get("notes", []), ensure_ascii=False),
            "phases": json.dumps(doc.get("phases", {})), "hash": digest, "prev_hash": prev,
        }
        yield cycle, _entries(store, seq, cycle_id)


def _entries(store: Store, seq: int, cycle_id: str) -> Iterator[dict[str, Any]]:
    for n, raw in enumerate(_stored_entries(store, seq), 1):
        e = json.loads(raw)
        yield {
            "cycle_id": cycle_id, "n": n, "change_id": e.get("change_id"), "action": e.get("action"),
            "object_type": e.get("object_type"), "entra_id": e.get("entra_id"), "name": e.get("name"),
            "local_id": e.get("local_id"), "status": e.get("status"), "reason": e.get("reason"),
            "modified": json.dumps(e.get("modified") or {}, ensure_ascii=False),
        }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("syncd")
    except PackageNotFoundError:
        return "unknown"
