"""`syncd reports export --sqlite FILE`: the audit trail as a plain database that sqlite-utils
(and Datasette) read as it is."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from syncd.model import Change
from tests.report.conftest import HOSTILE, Env, make_report


def _export(env: Env, target: Path, *args: str):
    return env.cli("reports", "export", "--sqlite", str(target), *args)


def test_cycles_and_entries_with_full_text_search(env: Env) -> None:
    old = datetime.now(UTC) - timedelta(days=3)
    big = [Change("create", "user", f"e{i}", f"user{i}@fabrikam.com", reason="assigned to the application") for i in range(2500)]
    env.save(make_report("c1", started=old, changes=big), make_report("c2", status="partial"))
    target = env.tmp / "audit.db"
    r = _export(env, target)
    assert r.code == 0 and r.out == "", r
    entries = 2500 + len(make_report("c2").entries)
    assert f"wrote 2 cycles and {entries} entries to {target}" in r.err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT cycle_id, status, entry_count FROM cycles ORDER BY seq").fetchall() == [
            ("c1", "succeeded", 2500), ("c2", "partial", entries - 2500)]
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (entries,)
        n, name, modified = db.execute("SELECT n, name, modified FROM entries WHERE cycle_id = 'c2' AND n = 1").fetchone()
        assert (n, name) == (1, HOSTILE[0]) and json.loads(modified)["user_name"] == {"old": None, "new": HOSTILE[0]}
        hits = db.execute("SELECT e.cycle_id, e.name FROM entries e JOIN entries_fts f ON f.rowid = e.rowid "
                          "WHERE entries_fts MATCH 'user1999'").fetchall()
        assert hits == [("c1", "user1999@fabrikam.com")]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert json.loads(db.execute("SELECT errors FROM cycles WHERE cycle_id = 'c2'").fetchone()[0])
    # the command line that comes with syncd reads it as it is
    sqlite_utils = Path(sys.executable).with_name("sqlite-utils")
    out = subprocess.run([str(sqlite_utils), "tables", str(target), "--counts"], capture_output=True, text=True, check=True).stdout
    assert f'"table": "entries", "count": {entries}' in out and '"table": "cycles", "count": 2' in out
    found = subprocess.run([str(sqlite_utils), "search", str(target), "entries", "user1999"], capture_output=True, text=True, check=True).stdout
    assert "user1999@fabrikam.com" in found


def test_filters_an_earlier_export_replaced_any_other_file_refused(env: Env) -> None:
    env.save(make_report("c1", started=datetime.now(UTC) - timedelta(days=10)), make_report("c2", status="partial"))
    target = env.tmp / "audit.db"
    assert _export(env, target).code == 0
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert _export(env, target, "--since", since).code == 0  # replaces its own
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT cycle_id FROM cycles").fetchall() == [("c2",)]
        assert dict(db.execute("SELECT key, value FROM export"))["since"].startswith(since)
    assert _export(env, target, "--status", "succeeded").code == 0
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT cycle_id FROM cycles").fetchall() == [("c1",)]
    mine = env.tmp / "mine.db"
    with sqlite3.connect(mine) as db:
        db.execute("CREATE TABLE precious (x)")
    before = mine.read_bytes()
    r = _export(env, mine)
    assert r.code == 2 and "is not a syncd export" in r.err and r.err.count("\n") == 1, r
    assert mine.read_bytes() == before
    assert not [p for p in env.tmp.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def test_the_export_needs_no_secret_and_leaves_the_store_as_it_was(env: Env) -> None:
    env.save(make_report("c1"))
    secret = env.tmp / "client-secret"
    os.unlink(secret)  # (commands that only read never need it)
    digest = env.store_path.read_bytes()
    r = _export(env, env.tmp / "a.db")
    assert r.code == 0, r
    assert env.store_path.read_bytes() == digest
