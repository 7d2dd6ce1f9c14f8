"""Batched creates: a big batch rebuilds the users indexes around its insert, and a batch the
database refuses still fails change by change with every index in place."""

from __future__ import annotations

from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---- the last batches, written behind (Applier.apply's meanwhile)

def _tail(n_users: int, taken: set[int], nul: bool) -> list[Change]:
    """A first cycle's tail: a group, new users (some whose Entra id a local user holds
    already: the batch is refused) and their memberships, then a skip."""
    group = Change("create", "group", "g1", "Group 1", values={"name": "Group 1"})
    users = [create(n) for n in range(n_users)]
    if nul and users:
        users[0].values = {**users[0].values, "display_name": "Ann\x00"}
    adds = [Change("add_member", "membership", "g1", f"Group 1 / user{n}", group_ref=("entra", "g1"), user_ref=("entra", f"e{n}"))
            for n in reversed(range(n_users))]
    skip = Change("skip", "user", "e99", "x", status="skipped", error=True)
    return [group, *users, *adds, skip]


def _outcome(store: Store, changes: list[Change]) -> tuple:
    rows = store.conn.execute("SELECT id, entra_id, user_name, display_name, email, status, managed, last_cycle_id FROM users ORDER BY id").fetchall()
    members = store.conn.execute("SELECT group_id, user_id FROM memberships ORDER BY 1, 2").fetchall()
    return rows, members, [(c.status, c.local_id, c.reason) for c in changes], store.conn.execute("PRAGMA integrity_check").fetchone()


@settings(max_examples=40, deadline=None)
@given(n_users=st.integers(0, 6), taken=st.sets(st.integers(0, 5), max_size=2), nul=st.booleans())
def test_batches_written_behind_end_as_the_apply_would_leave_them(tmp_path_factory, n_users, taken, nul):
    outcomes, seen = [], []
    for behind in (False, True):
        path = tmp_path_factory.mktemp("behind") / "syncd.db"
        with (Store(str(path)) as store, patch.object(apply_mod, "BEHIND_AT", 2), patch.object(apply_mod, "REBUILD_INDEXES_AT", 3),
              patch.object(apply_mod, "ROWS_PER_STATEMENT", 2)):
            for n in sorted(taken):  # local users holding Entra ids the batch brings again
                store.conn.execute("INSERT INTO users (entra_id, user_name, created_at, updated_at) VALUES (?, ?, 'x', 'x')", (f"e{n}", f"old{n}"))
            changes = _tail(n_users, taken, nul)

            def meanwhile(changes: list[Change] = changes) -> None:
                seen.append([(c.status, c.local_id) for c in changes])

            with store.transaction():
                ran = Applier(store, "c1", "now").apply(changes, meanwhile=meanwhile if behind else None)
            outcomes.append(_outcome(store, changes))
        if behind:
            # behind when the users batch goes in whole: two users at least, none taken, no U+0000
            wrote_behind = n_users >= 2 and not (taken & set(range(n_users))) and not nul
            assert ran == wrote_behind
            if seen:  # meanwhile saw the changes as they ended when the batches went in
                assert not ran or seen[-1] == [(c.status, c.local_id) for c in changes]
        else:
            assert ran is False
    assert outcomes[0] == outcomes[1]
    assert outcomes[1][-1] == ("ok",)


def test_a_failing_meanwhile_still_waits_for_the_batches(store, monkeypatch):
    monkeypatch.setattr(apply_mod, "BEHIND_AT", 2)
    changes = _tail(4, set(), nul=False)

    def meanwhile() -> None:
        raise RuntimeError("the report failed")

    with pytest.raises(RuntimeError), store.transaction():
        Applier(store, "c1", "now").apply(changes, meanwhile=meanwhile)
    assert not store.conn.in_transaction  # rolled back, after the helper let go of the connection
    assert store.conn.execute("SELECT count(*) FROM users WHERE entra_id IS NOT NULL").fetchone() == (0,)


def test_the_batches_behind_have_the_connection_to_themselves(store, monkeypatch):
    from syncd.store.db import ConnectionLent

    monkeypatch.setattr(apply_mod, "BEHIND_AT", 2)
    changes = _tail(4, set(), nul=False)
    with pytest.raises(ConnectionLent), store.transaction():
        Applier(store, "c1", "now").apply(changes, meanwhile=lambda: store.conn.execute("SELECT 1"))
    assert not store.conn.in_transaction
    assert store.conn.execute("SELECT count(*) FROM users WHERE entra_id IS NOT NULL").fetchone() == (0,)


@pytest.mark.parametrize("names", [["Sales", "Ops"], ["Sales", "Ops\x00"]])
def test_a_run_of_new_groups_goes_in_as_one_at_a_time_would(tmp_path, names):
    # (one JSON statement, as users; a name with U+0000 goes in one at a time instead)
    outcomes = []
    for batched in (True, False):
        with Store(str(tmp_path / f"{batched}.db")) as store, patch.object(apply_mod, "BATCHED", apply_mod.BATCHED if batched else frozenset()):
            changes = [Change("create", "group", f"g{n}", name, values={"name": name}) for n, name in enumerate(names)]
            Applier(store, "c1", "2026-01-01T00:00:00+00:00").apply(changes)
            rows = store.conn.execute("SELECT id, entra_id, name, managed FROM groups WHERE entra_id IS NOT NULL ORDER BY id").fetchall()
            outcomes.append((rows, [(c.status, c.local_id) for c in changes]))
    assert outcomes[0] == outcomes[1]
    assert [r[2] for r in outcomes[0][0]] == names
