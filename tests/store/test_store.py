"""The SQLite store: private files, schema versions, the reserved Administrators group, locks."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.errors import LockHeld, SyncdError
from syncd.lock import cycle_lock
from syncd.store import local
from syncd.store.db import Store
from syncd.store.schema import SCHEMA_VERSION


def test_store_files_are_private_and_administrators_exists(tmp_path: Path) -> None:
    path = tmp_path / "state" / "syncd.db"
    with Store(str(path)) as store:
        local.add_user(store, "a@example.com", None)
        groups = local.list_groups(store)
    assert [g["name"] for g in groups] == ["Administrators"]
    assert groups[0]["managed"] is False and groups[0]["members"] == []
    for p in path.parent.iterdir():
        if p.name.startswith("syncd.db"):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_schema_version_recorded_and_newer_store_refused(tmp_path: Path) -> None:
    path = tmp_path / "syncd.db"
    Store(str(path)).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(SyncdError, match="newer syncd"):
        Store(str(path))


def test_reopening_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "syncd.db"
    for _ in range(3):
        Store(str(path)).close()
    with Store(str(path)) as store:
        assert len(local.list_groups(store)) == 1


def test_a_new_store_has_16k_pages_and_an_existing_one_keeps_its_own(tmp_path: Path) -> None:
    with Store(str(tmp_path / "new.db")) as store:
        assert store.conn.execute("PRAGMA page_size").fetchone() == (16384,)
        assert store.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)  # a store made before: SQLite's default page size
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    with Store(str(old)) as store:
        local.add_user(store, "a@example.com", None)
        assert store.conn.execute("PRAGMA page_size").fetchone() == (4096,)
        assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "syncd.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SyncdError, match="cannot be opened"):
        Store(str(path))


def _hold(path: str, ready, release) -> None:
    with cycle_lock(path, command="syncd run"):
        ready.set()
        release.wait(10)


def test_lock_names_its_holder_and_wait_succeeds(tmp_path: Path) -> None:
    path = str(tmp_path / "syncd.db")
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(path, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockHeld) as info, cycle_lock(path, wait=0.3):
            pass
        assert f"pid {proc.pid}" in str(info.value) and "syncd run" in str(info.value)
        assert info.value.exit_code == 5
        release.set()
        with cycle_lock(path, wait=10):
            pass
    finally:
        release.set()
        proc.join(10)
    assert os.path.exists(path + ".lock")


def test_a_first_release_store_is_migrated(tmp_path: Path) -> None:
    from syncd.store.schema import MIGRATIONS, _statements

    path = tmp_path / "syncd.db"
    conn = sqlite3.connect(path)
    for statement in _statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO users (user_name, created_at, updated_at) VALUES ('kept@example.com', 'x', 'x')")
    conn.commit()
    conn.close()
    with Store(str(path)) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.conn.execute("SELECT count(*) FROM failures").fetchone()[0] == 0
        assert [u["user_name"] for u in local.list_users(store)] == ["kept@example.com"]


def test_cycle_ids_started_in_one_second_do_not_collide() -> None:
    from syncd.cycle import new_cycle_id

    ids = {new_cycle_id() for _ in range(600)}
    # 16 random bits collided in CI at 12 cycles (and would here 94% of the time); 32 bits: 4e-5
    assert len(ids) == 600


@given(st.text(max_size=8), st.text(max_size=8), st.lists(st.text(max_size=6), max_size=2500))
@settings(max_examples=30, deadline=None)
def test_chain_hashes_are_sha256_of_the_documented_bytes(prev: str, header: str, entries: list[str]) -> None:
    """Hashed a thousand entries at a time, the bytes are still exactly those documented."""
    import hashlib

    from syncd.store.audit import chain_hash, entries_hash

    naive = prev + "\n" + header + "".join("\n" + e for e in entries)
    assert chain_hash(prev, header, entries) == hashlib.sha256(naive.encode()).hexdigest()
    assert entries_hash(entries) == hashlib.sha256("".join(e + "\n" for e in entries).encode()).hexdigest()


def test_a_v2_store_keeps_its_reports_and_their_chain_when_entries_move_to_chunks(tmp_path: Path) -> None:
    from syncd.model import Change
    from syncd.report.chunks import unpack
    from syncd.store.audit import load_report, save_report, verify_chain
    from tests.report.conftest import make_report

    path = tmp_path / "syncd.db"
    with Store(str(path)) as store, store.transaction():
        save_report(store, make_report("big", changes=[Change("create", "user", f"e{i}", f"u{i}@x.com") for i in range(1500)]))
        save_report(store, make_report("small"))
    with Store(str(path)) as store:
        expected = {cid: list(load_report(store, cid).entries.iter_raw()) for cid in ("big", "small")}
    # the same store as syncd before V3 wrote it: one row per entry
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE entries (cycle_seq INTEGER NOT NULL REFERENCES cycles (seq) ON DELETE CASCADE, "
                 "n INTEGER NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (cycle_seq, n)) WITHOUT ROWID")
    for seq, first, stored in conn.execute("SELECT cycle_seq, first_n, entries FROM entry_chunks").fetchall():
        conn.executemany("INSERT INTO entries VALUES (?, ?, ?)", ((seq, first + i, e) for i, e in enumerate(unpack(stored))))
    conn.execute("DROP TABLE entry_chunks")
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    with Store(str(path)) as store:
        c = store.conn
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'entries'").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM entry_chunks").fetchone()[0] == 3  # 1,000 + 500, and the small one
        assert {cid: list(load_report(store, cid).entries.iter_raw()) for cid in expected} == expected
        result = verify_chain(store)
        assert result.ok and result.cycles == 2 and result.entries == sum(map(len, expected.values()))


def _file_alone(path: Path, tmp_path: Path) -> int:
    """The rows the database file holds without its WAL (a copy of the file alone)."""
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'k%'").fetchone()[0])
    finally:
        conn.close()
        copy.unlink()


@pytest.mark.parametrize("behind", [True, False], ids=["behind", "at the end"])
def test_checkpoints_left_to_the_caller_are_copied_back_by_it(tmp_path: Path, behind: bool) -> None:
    from syncd.store import db

    path = tmp_path / "syncd.db"
    Store(str(path)).close()
    rows = [(f"k{i}", "x" * 500) for i in range(3000)]  # ~100 pages: SQLite's own autocheckpoint would wait for 1,000
    with db.checkpoints_left_to_caller() as left:
        with Store(str(path)) as store:
            assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
            with store.transaction():
                store.conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows)
        assert _file_alone(path, tmp_path) == 0  # the store closed, its commit still in the WAL
        if behind:
            left.behind().result()
            assert _file_alone(path, tmp_path) == len(rows)
    assert _file_alone(path, tmp_path) == len(rows)  # the WAL copied back at the latest here
    with Store(str(path)) as store:  # outside, as SQLite does
        assert store.conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)


# ---- the connection lent to a helper thread (Store.lend)


def test_a_lent_connection_is_the_borrowers_alone(tmp_path: Path) -> None:
    import threading

    from syncd.store.db import ConnectionLent

    started, go_on = threading.Event(), threading.Event()

    def work(conn: sqlite3.Connection) -> int:
        started.set()
        go_on.wait(10)
        assert store.conn is conn  # the borrower may go through the store
        return int(conn.execute("SELECT count(*) FROM groups").fetchone()[0])

    with Store(str(tmp_path / "syncd.db")) as store:
        with store.lend(work) as future:
            started.wait(10)
            with pytest.raises(ConnectionLent, match="lent to a helper thread"):
                store.conn.execute("SELECT 1")
            with pytest.raises(ConnectionLent), store.lend(work):
                pass
            go_on.set()
        assert future.result() == 1  # (Administrators)
        assert store.conn.execute("SELECT 1").fetchone() == (1,)  # the store's own again


def test_the_works_exception_is_raised_on_the_way_out(tmp_path: Path) -> None:
    def work(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT * FROM no_such_table")

    with Store(str(tmp_path / "syncd.db")) as store:
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"), store.lend(work):
            pass
        with pytest.raises(sqlite3.OperationalError) as raised, store.lend(work):
            raise KeyError("the body failed too")
        assert isinstance(raised.value.__context__, KeyError)
        with pytest.raises(KeyError), store.lend(lambda conn: None):
            raise KeyError("the body alone")
        assert store.conn.execute("SELECT 1").fetchone() == (1,)
