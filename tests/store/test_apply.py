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


def test_group_creates_go_in_one_batch_and_a_refused_one_fails_alone(store):
    def group(n: int) -> Change:
        return Change("create", "group", f"g{n}", f"Group {n}", values={"name": f"Group {n}"})

    with store.transaction():
        Applier(store, "c1", "now").apply([group(1)])
    changes = [group(n) for n in range(4)]  # g1 exists: the batch is refused
    with store.transaction():
        applier = Applier(store, "c2", "now")
        applier.apply(changes)
    assert [c.status for c in changes] == ["success", "failure", "success", "success"]
    rows = dict(store.conn.execute("SELECT entra_id, id FROM groups WHERE entra_id IS NOT NULL").fetchall())
    assert all(c.local_id == rows[c.entra_id] for c in changes if c.status == "success")
    assert {k: applier.group_ids[k] for k in ("g0", "g2", "g3")} == {k: rows[k] for k in ("g0", "g2", "g3")}
    many = [group(n) for n in range(10, 16)]  # accepted whole: ids as the table gave them
    with store.transaction():
        Applier(store, "c3", "now").apply(many)
    rows = dict(store.conn.execute("SELECT entra_id, id FROM groups WHERE entra_id IS NOT NULL").fetchall())
    assert [c.local_id for c in many] == [rows[c.entra_id] for c in many] and len(set(rows.values())) == len(rows)
    assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_batch_of_creates_numbers_its_users_on_from_the_largest_id(store):
    now = "2026-01-01T00:00:00+00:00"
    # an unmanaged local user far up the id range, and one below it that leaves
    store.conn.execute("INSERT INTO users (id, user_name, created_at, updated_at) VALUES (40, 'local40', ?, ?)", (now, now))
    store.conn.execute("INSERT INTO users (id, user_name, created_at, updated_at) VALUES (7, 'local7', ?, ?)", (now, now))
    store.conn.execute("DELETE FROM users WHERE id = 7")
    changes = [create(n) for n in range(4)]
    with store.transaction():
        applier = Applier(store, "c1", now)
        applier.apply(changes)
    rows = dict(store.conn.execute("SELECT entra_id, id FROM users WHERE entra_id IS NOT NULL").fetchall())
    assert [c.local_id for c in changes] == [rows[c.entra_id] for c in changes] == [41, 42, 43, 44]
    assert applier.user_ids == rows
    # one more, alone (no batch): SQLite numbers it on from there as well
    one = [create(9)]
    with store.transaction():
        Applier(store, "c2", now).apply(one)
    assert one[0].local_id == 45 == store.conn.execute("SELECT id FROM users WHERE entra_id = 'e9'").fetchone()[0]


def test_a_big_batch_of_memberships_rebuilds_the_memberships_index(store):
    def member_index() -> list[tuple]:
        return store.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'memberships' AND sql IS NOT NULL").fetchall()

    before = member_index()
    assert [name for name, _ in before] == ["memberships_user"]
    group = Change("create", "group", "g1", "Group 1", values={"name": "Group 1"})
    users = [create(n) for n in range(5)]
    # plan order (by user), not key order: the batch sorts its rows
    adds = [Change("add_member", "membership", None, f"user{n}@contoso.com", group_ref=("entra", "g1"), user_ref=("entra", f"e{n}"))
            for n in (3, 0, 4, 1, 2)]
    with store.transaction():
        Applier(store, "c1", "now").apply([group, *users, *adds])
    assert [c.status for c in adds] == ["success"] * 5
    assert member_index() == before
    got = store.conn.execute(
        "SELECT u.entra_id FROM memberships m JOIN users u ON u.id = m.user_id JOIN groups g ON g.id = m.group_id WHERE g.entra_id = 'g1' ORDER BY u.entra_id"
    ).fetchall()
    assert got == [(f"e{n}",) for n in range(5)]
    plan = store.conn.execute("EXPLAIN QUERY PLAN SELECT group_id FROM memberships WHERE user_id = ?", (users[2].local_id,)).fetchall()
    assert "memberships_user" in str(plan)
    assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
