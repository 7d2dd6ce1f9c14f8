"""A full read's users staged in a temp table reach the mirror exactly as if held in Python."""

from __future__ import annotations

import sqlite3
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.errors import SourceError
from syncd.model import EntraGroup, EntraUser, GraphRead
from syncd.read import GraphPage, ReadAccumulator
from syncd.store import buffer
from syncd.store.db import ConnectionLent, Store
from syncd.store.incoming import IncomingRead

IDS = [f"00000000-0000-0000-0000-{i:012d}" for i in range(8)]

# one event: (user index, None = removed | (name, enabled))
event = st.tuples(st.integers(0, len(IDS) - 1), st.none() | st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()))
pages = st.lists(st.lists(event, max_size=6), max_size=5)


def users_page(events) -> GraphPage:
    page = GraphPage("users")
    for i, what in events:
        if what is None:
            page.removed_users.append(IDS[i])
        else:
            name, enabled = what
            page.users.append(EntraUser(IDS[i], f"{name}{i}@contoso.com", f"{name} {i}", None, enabled, "Member"))
    return page


def mirror(store: Store) -> list[tuple]:
    return store.conn.execute("SELECT * FROM entra_users ORDER BY id").fetchall()


def fold(store: Store, read: GraphRead) -> list[tuple]:
    with store.transaction():
        pending = store.apply_read(read)
        if pending is not None:  # (the buffered users)
            pending.run(store.conn)
    return mirror(store)


@settings(max_examples=150, deadline=None)
@given(before=pages, read_pages=pages, reset_after=st.none() | st.integers(0, 5), per_insert=st.sampled_from([1, 2, 100]))
def test_buffered_users_fold_to_what_the_accumulator_gives(tmp_path_factory, before, read_pages, reset_after, per_insert):
    # per_insert: rows per INSERT statement (and the rest of a page one by one)
    tmp = tmp_path_factory.mktemp("buffer")
    held, staged = Store(str(tmp / "held.db")), Store(str(tmp / "staged.db"))
    try:
        # both mirrors start from the same earlier full read: a full read replaces them
        for store in (held, staged):
            acc = ReadAccumulator(full=True)
            acc.add(users_page([e for p in before for e in p]))
            fold(store, acc.finish())

        acc = ReadAccumulator(full=True)
        with patch.object(buffer, "ROWS_PER_INSERT", per_insert):
            sink = staged.buffered_read(full=True)
            for n, events in enumerate(read_pages):
                if n == reset_after:  # an expired link: what came before is dropped
                    acc = ReadAccumulator(full=True)
                    sink.add(GraphPage("reset"))
                acc.add(users_page(events))
                sink.add(users_page(events))
            streamed = sink.finish(GraphRead(full=True, assignments={}))

        assert not streamed.users  # none held in Python
        start = reset_after if reset_after is not None and reset_after < len(read_pages) else 0
        assert streamed.users_buffered == sum(what is not None for events in read_pages[start:] for _, what in events)
        assert fold(staged, streamed) == fold(held, acc.finish())
    finally:
        held.close()
        staged.close()


def test_an_incremental_read_is_held_not_staged(tmp_path):
    with Store(str(tmp_path / "s.db")) as store:
        sink = store.buffered_read(full=False)
        sink.add(users_page([(1, ("a", True))]))
        read = sink.finish(GraphRead(full=False, assignments={}))
        assert set(read.users) == {IDS[1]} and read.users_buffered == 0


def test_a_reset_turns_an_incremental_read_into_a_staged_full_one(tmp_path):
    with Store(str(tmp_path / "s.db")) as store:
        sink = store.buffered_read(full=False)
        sink.add(users_page([(1, ("a", True))]))
        sink.add(GraphPage("reset"))
        sink.add(users_page([(2, ("b", True))]))
        read = sink.finish(GraphRead(full=True, assignments={}))
        assert not read.users and read.users_buffered == 1
        assert [r[0] for r in fold(store, read)] == [IDS[2]]


def test_a_non_streaming_reader_keeps_its_users(tmp_path):
    with Store(str(tmp_path / "s.db")) as store:
        sink = store.buffered_read(full=True)
        user = EntraUser(IDS[3], "x@contoso.com", "X", None, True)
        read = sink.finish(GraphRead(full=True, assignments={}, users={user.id: user}))
        assert read.users == {user.id: user} and read.users_buffered == 0
        assert [r[0] for r in fold(store, read)] == [IDS[3]]


def test_an_abandoned_read_never_touches_the_store_again(tmp_path):
    with Store(str(tmp_path / "s.db")) as store:
        sink = store.buffered_read(full=True)
        sink.add(users_page([(1, ("a", True))]))
        sink.abandon()
        with pytest.raises(SourceError):
            sink.add(users_page([(2, ("b", True))]))
        staged = store.conn.execute("SELECT id FROM temp.buffered_users").fetchall()
        assert staged == [(IDS[1],)]


def test_buffering_locks_nothing_in_the_store_and_ends_with_the_read(tmp_path):
    path = str(tmp_path / "s.db")
    with Store(path) as store, Store(path) as other:
        sink = store.buffered_read(full=True)
        sink.add(users_page([(1, ("a", True))]))
        assert store.conn.in_transaction  # the pages' own transaction, on the temp database
        other.conn.execute("PRAGMA busy_timeout = 0")  # a lock held on the store fails at once
        with other.transaction():
            other.set_meta("written", "during the read")
        sink.add(users_page([(2, ("b", True))]))
        read = sink.finish(GraphRead(full=True, assignments={}))
        assert not store.conn.in_transaction  # the cycle's transaction can begin
        assert [r[0] for r in fold(store, read)] == [IDS[1], IDS[2]]
        assert store.get_meta("written") == "during the read"


GIDS = [f"10000000-0000-0000-0000-{i:012d}" for i in range(4)]

# one groups event: (group index, None = removed | (name or None = a slice with members
# only, [(user index, added?)]))
group_event = st.tuples(
    st.integers(0, len(GIDS) - 1),
    st.none() | st.tuples(st.none() | st.sampled_from(["g", "h"]), st.lists(st.tuples(st.integers(0, len(IDS) - 1), st.booleans()), max_size=4)),
)


def groups_page(events) -> GraphPage:
    page = GraphPage("groups")
    for i, what in events:
        gid = GIDS[i]
        if what is None:
            page.removed_groups.append(gid)
            continue
        name, members = what
        page.group_ids.append(gid)
        if name is not None:
            page.groups.append(EntraGroup(gid, f"{name}{i}", True))
        added = page.members_added.setdefault(gid, {})
        removed = page.members_removed.setdefault(gid, set())
        for m, present in members:
            if present:
                removed.discard(IDS[m])
                added[IDS[m]] = "user"
            else:
                added.pop(IDS[m], None)
                removed.add(IDS[m])
    return page


def _comparable(view) -> tuple:
    return ({uid: tuple(u) for uid, u in view.users.items()}, view.groups, view.members, view.assignments)


@settings(max_examples=150, deadline=None)
@given(
    read_pages=pages, group_pages=st.lists(st.lists(group_event, max_size=4), max_size=4),
    assigned=st.sets(st.integers(0, len(IDS) - 1)), linked=st.sets(st.integers(0, len(IDS) - 1)), within_reach=st.booleans(),
    per_statement=st.sampled_from([1, 3, 50_000]),
)
def test_the_view_a_pending_fold_hands_over_is_the_mirrors_after_it(
    tmp_path_factory, read_pages, group_pages, assigned, linked, within_reach, per_statement,
):
    # cycle.py plans over the read's view of Entra while the fold runs: it must be what
    # load_entra_view reads once the read is in the mirror (a user's last row, less the
    # read's removals; the groups and members as apply_read leaves them)
    with Store(str(tmp_path_factory.mktemp("pending") / "s.db")) as store:
        for i in sorted(linked):  # local users linked to Entra ones: within reach too
            store.conn.execute(
                "INSERT INTO users (entra_id, user_name, status, managed, created_at, updated_at) VALUES (?, ?, 'active', 1, 'x', 'x')",
                (IDS[i], f"local{i}"),
            )
        incoming = IncomingRead(store, full=True)

        def fetch(add):
            for events in read_pages:
                add(users_page(events))
            for events in group_pages:
                add(groups_page(events))
            return GraphRead(full=True, assignments={IDS[i]: "User" for i in assigned} | {GIDS[0]: "Group"})

        read = incoming.receive(fetch)
        buffered = read.users_buffered
        with store.transaction():
            incoming.into_mirror(read, on_demand=False, stored_assignments=store.assignments())
            if buffered:
                assert not mirror(store)  # nothing of the buffered users yet
            view = incoming.whole_view(within_reach=within_reach, max_users=10**9)
            assert (view is None) == (buffered == 0)  # a handful of users: held in Python as well
            if view is None:
                return
            assert incoming.whole_view(within_reach=within_reach, max_users=10**9) is None  # handed over once
            with patch.object(buffer, "MEMBERS_PER_STATEMENT", per_statement), incoming.alongside():
                pass  # (the memberships go in as JSON, per_statement at a time, whole groups)
            assert _comparable(view) == _comparable(store.load_entra_view(within_reach=within_reach))


def test_a_fold_that_fails_on_its_thread_fails_the_block_once_it_is_over(tmp_path):
    with Store(str(tmp_path / "s.db")) as store:
        incoming = IncomingRead(store, full=True)
        read = incoming.receive(lambda add: add(users_page([(1, ("a", True))])) or GraphRead(full=True, assignments={}))
        ran = []
        with pytest.raises(sqlite3.OperationalError, match="buffered_users"), store.transaction():
            incoming.into_mirror(read, on_demand=False, stored_assignments={})
            store.conn.execute("DROP TABLE temp.buffered_users")
            with incoming.alongside():
                ran.append("block")
                with pytest.raises(ConnectionLent):
                    store.conn.execute("SELECT 1")  # the fold's meanwhile
        assert ran == ["block"]  # the block ran to its end; the failure came after it
        assert not mirror(store)  # rolled back
        incoming.written()  # it ran (and failed) once: not again


def test_past_hold_users_the_buffered_users_are_not_held(tmp_path, monkeypatch):
    monkeypatch.setattr(buffer, "HOLD_USERS", 2)
    with Store(str(tmp_path / "s.db")) as store:
        incoming = IncomingRead(store, full=True)

        def fetch(add):
            add(users_page([(1, ("a", True)), (2, ("a", True))]))
            add(users_page([(3, ("a", True))]))  # the third: past the limit, none stay held
            return GraphRead(full=True, assignments={})

        read = incoming.receive(fetch)
        assert read.users_buffered == 3 and read.buffered_held is None
        with store.transaction():
            incoming.into_mirror(read, on_demand=False, stored_assignments={})
            assert incoming.whole_view(within_reach=False, max_users=10**9) is None
            assert [r[0] for r in mirror(store)] == IDS[1:4]  # complete without a view


def test_a_folds_universe_bound_counts_the_read_and_the_linked_users_once(tmp_path):
    with Store(str(tmp_path / "s.db")) as store:
        sink = store.buffered_read(full=True)
        sink.add(users_page([(1, ("a", True)), (2, ("a", True))]))
        read = sink.finish(GraphRead(full=True, assignments={}))
        with store.transaction():
            fold = store.apply_read(read)
            assert fold is not None
            store.conn.execute(
                "INSERT INTO users (entra_id, user_name, status, managed, created_at, updated_at) VALUES (?, 'l', 'active', 1, 'x', 'x')",
                (IDS[5],),
            )
            linked = store.linked_entra_ids()
            assert linked == {IDS[5]}
            assert fold.universe_bound(linked | {IDS[2]}) == 3  # 1, 2 and 5
            fold.run(store.conn)
