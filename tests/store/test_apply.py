"""Batched creates: a big batch rebuilds the users indexes around its insert, and a batch the
database refuses still fails change by change with every index in place."""

from __future__ import annotations

import pytest

from syncd.model import Change
from syncd.store import apply as apply_mod
from syncd.store.apply import Applier
from syncd.store.db import Store


def create(n: int) -> Change:
    name = f"user{n}@contoso.com"
    return Change("create", "user", f"e{n}", name, values={"user_name": name, "display_name": f"User {n}", "email": name, "status": "active"})


def indexes(store: Store) -> list[tuple]:
    return store.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users' ORDER BY name").fetchall()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(apply_mod, "REBUILD_INDEXES_AT", 3)
    with Store(str(tmp_path / "syncd.db")) as s:
        yield s


def test_a_big_batch_of_creates_rebuilds_the_indexes_it_dropped(store):
    before = indexes(store)
    assert any("NOCASE" in (sql or "") for _, sql in before)
    changes = [create(n) for n in range(5)]
    with store.transaction():
        Applier(store, "c1", "2026-01-01T00:00:00+00:00").apply(changes)
    assert indexes(store) == before
    assert [c.status for c in changes] == ["success"] * 5
    # the rebuilt index answers case-insensitive lookups
    plan = store.conn.execute("EXPLAIN QUERY PLAN SELECT id FROM users WHERE user_name = 'USER3@CONTOSO.COM' COLLATE NOCASE").fetchall()
    assert "users_user_name" in str(plan)
    assert store.conn.execute("SELECT entra_id FROM users WHERE user_name = 'USER3@CONTOSO.COM' COLLATE NOCASE").fetchone() == ("e3",)
    assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_refused_batch_fails_alone_and_keeps_the_indexes(store):
    before = indexes(store)
    with store.transaction():
        Applier(store, "c1", "2026-01-01T00:00:00+00:00").apply([create(2)])
    changes = [create(n) for n in range(5)]  # e2 exists: the batch insert is refused
    with store.transaction():
        Applier(store, "c2", "2026-01-01T00:00:00+00:00").apply(changes)
    assert [c.status for c in changes] == ["success", "success", "failure", "success", "success"]
    assert indexes(store) == before
    assert store.conn.execute("SELECT count(*) FROM users WHERE entra_id LIKE 'e%'").fetchone() == (5,)
    assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
