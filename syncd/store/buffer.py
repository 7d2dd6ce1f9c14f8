"""A full read's users go to a temp table as their pages arrive (and, while few, are held).

A full read carries every user of the tenant, assigned or not: 1M users held as
``EntraUser`` objects cost ~400 MB before the planner has looked at one of them. The
mirror is where they end up anyway, so ``BufferedRead`` writes each users page into
``temp.buffered_users`` during the read (outside the cycle's transaction: temp tables are
private to the connection, need no lock on the store and no fsync), and
``Store.apply_read`` folds that table into ``entra_users`` inside the transaction with one
``INSERT … SELECT`` in key order (the removals follow it, from ``read.removed_users``). A
read that fails leaves only the temp table, which the next read (or closing the
connection) drops: nothing reaches the mirror (R14).

Up to ``HOLD_USERS`` buffered users are also held in Python (``GraphRead.buffered_held``):
the planner then takes the read's view of Entra as the mirror will hold it
(``Fold.take_view``) instead of reading it back. The fold is SQLite's work alone, and
sqlite3 lets go of the GIL while a statement runs, so ``Fold`` runs it on a helper thread
while the planner, pure Python with no I/O, plans: neither the fold nor reading the mirror
back is on the cycle's path (BENCHMARKS.md).

Everything else (assignments, groups and members, and every page of an incremental read)
is small, and the scoped planner needs it in hand: it stays in a ``ReadAccumulator``. A
full read's memberships go into the mirror with the fold, as JSON (``MEMBERS_SQL``).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from itertools import chain

import orjson

from ..errors import ReadCancelled
from ..model import ABSENT, EntraUser, EntraView, GraphRead, overlay_user, unknown_user
from ..read import GraphPage, ReadAccumulator

_COLUMNS = "id, upn, display_name, mail, enabled, user_type"

# the last occurrence of a user in the read wins (delta replays: INSERT OR REPLACE in (id,
# seq) order); rows come out in key order, so entra_users (WITHOUT ROWID, keyed by id) is
# filled by appending instead of by inserts at random places in its B-tree (cheaper than a
# row_number() window picking the latest row first: BENCHMARKS.md)
FOLD_SQL = f"INSERT OR REPLACE INTO main.entra_users ({_COLUMNS}) SELECT {_COLUMNS} FROM temp.buffered_users ORDER BY id, seq"

def _user(r: tuple) -> EntraUser:
    """A mirror or buffered row (``_COLUMNS``) as a user; enabled is NULL when never said."""
    return EntraUser(r[0], r[1], r[2], r[3], None if r[4] is None else bool(r[4]), r[5])


# buffered rows per INSERT statement (600 parameters; SQLite allows 32766)
ROWS_PER_INSERT = 100


@functools.cache
def _insert_sql(rows: int) -> str:
    return f"INSERT INTO temp.buffered_users ({_COLUMNS}) VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)


# a full read's users held in Python beside the temp table, at most (~40 MB at 100k);
# past it they are dropped and the plan reads them from the mirror (cycle.SLICE_USERS
# plans a tenant that large in slices anyway)
HOLD_USERS = 100_000


class BufferedRead:
    """``on_page`` sink for one cycle's read (see the module docstring).

    ``full``: whether the read starts as a full one (no delta links). A ``reset`` page (a
    stored link expired) turns it into one and drops what came before.
    """

    def __init__(self, conn: sqlite3.Connection, *, full: bool) -> None:
        self._conn = conn
        self._full = full
        self._acc = ReadAccumulator(full=full)
        self._buffered = 0
        # the daemon may abandon a read that goes on in its thread: after ``abandon`` no
        # page touches the connection again (the cycle goes on to use it, then closes it)
        self._lock = threading.Lock()
        self._abandoned = False
        # users a full read removed after (or without) buffering them; rare, so kept here
        self._removed: set[str] = set()
        # the buffered users as the fold will leave them, while there are few enough
        self._held: dict[str, EntraUser] | None = {}
        # users that came partial and not whole after: laid over what is known at finish()
        self._partial: dict[str, EntraUser] = {}
        conn.execute("DROP TABLE IF EXISTS temp.buffered_users")
        conn.execute(
            "CREATE TEMP TABLE buffered_users (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, upn TEXT, "
            "display_name TEXT, mail TEXT, enabled INTEGER, user_type TEXT)"
        )
        # no rollback journal for the temp database (it is write-heavy). Safe because
        # nothing is ever rolled back there: a read that fails is dropped whole, and the
        # cycle's transaction only reads the table
        conn.execute("PRAGMA temp.journal_mode = OFF")
        # the pages go in within one transaction of their own, which touches only the temp
        # database (no lock on the store): committing each page wrote the temp file's pages
        # out every time; a temp database in memory would hold a 1M-user read in RAM
        self._open = False

    def add(self, page: GraphPage) -> None:
        with self._lock:
            if self._abandoned:
                raise ReadCancelled("the read was abandoned")
            if page.kind == "reset":
                self._full = True
                self._acc = ReadAccumulator(full=True)
                self._conn.execute("DELETE FROM temp.buffered_users")
                self._buffered = 0
                self._removed = set()
                self._held = {}
                self._partial = {}
                return
            if self._full and (page.users or page.removed_users):
                self._stage(page)
                page.users, page.removed_users = [], []
            self._acc.add(page)

    def _stage(self, page: GraphPage) -> None:
        # a page's removals count after its users, as in ReadAccumulator
        if self._removed:
            self._removed.difference_update(u.id for u in page.users)
        self._removed.update(page.removed_users)
        users = page.users
        # a partial user (rare in a full read) waits for finish(), which lays it over what
        # came before it; a whole one supersedes the partial ones before it
        partial = [u for u in users if ABSENT in u]
        if partial:
            users = [u for u in users if ABSENT not in u]
            for u in partial:
                self._partial[u.id] = overlay_user(self._partial.get(u.id), u)
        if self._partial:
            for uid in chain((u.id for u in users), page.removed_users):
                self._partial.pop(uid, None)
        self._write(users)
        if self._held is not None:
            for uid in page.removed_users:
                self._held.pop(uid, None)

    def _write(self, users: list[EntraUser]) -> None:
        """Stage whole users, in their order (the last occurrence of a user wins: FOLD_SQL)."""
        if not self._open:
            self._conn.execute("BEGIN")
            self._open = True
        # an EntraUser is a named tuple in the table's column order: it is the row, and
        # ROWS_PER_INSERT of them, chained, are one statement's parameters (the read is
        # CPU-bound: fewer statements)
        k = ROWS_PER_INSERT
        whole = len(users) - len(users) % k
        if whole:
            self._conn.executemany(_insert_sql(k), (tuple(chain.from_iterable(users[i : i + k])) for i in range(0, whole, k)))
        self._conn.executemany(_insert_sql(1), map(tuple, users[whole:]))
        self._buffered += len(users)
        if self._held is not None:
            if self._buffered > HOLD_USERS:
                self._held = None
            else:
                self._held.update((u.id, u) for u in users)

    def _lay_partials(self) -> None:
        """Each partial user over its last whole occurrence in this read, else over the
        mirror's copy, else over nothing known (R14a), buffered last so that it wins."""
        ids = orjson.dumps(list(self._partial)).decode()
        known: dict[str, EntraUser] = {}
        for sql in (
            f"SELECT {_COLUMNS} FROM main.entra_users WHERE id IN (SELECT value FROM json_each(?))",
            f"SELECT {_COLUMNS} FROM temp.buffered_users WHERE id IN (SELECT value FROM json_each(?)) ORDER BY seq",
        ):
            known.update((r[0], _user(r)) for r in self._conn.execute(sql, (ids,)))
        partial, self._partial = self._partial, {}
        self._write([overlay_user(known.get(uid) or unknown_user(uid), u) for uid, u in partial.items()])

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            self._commit()

    def _commit(self) -> None:
        # the buffering transaction ends before the cycle's own begins
        if self._open:
            self._conn.execute("COMMIT")
            self._open = False

    def finish(self, read: GraphRead) -> GraphRead:
        """The whole read: what the source returned, plus what its pages brought here.

        A reader that does not stream (tests, benches) returns everything in ``read``; the
        two are merged either way.
        """
        with self._lock:
            if self._partial:
                self._lay_partials()
            self._commit()
        got = self._acc.finish()
        read.users.update(got.users)
        read.removed_users |= got.removed_users
        read.groups.update(got.groups)
        read.removed_groups |= got.removed_groups
        read.members_added.update(got.members_added)
        read.members_removed.update(got.members_removed)
        read.assignments.update(got.assignments)
        read.users_buffered = self._buffered
        read.buffered_held, self._held = (self._held if self._buffered else None), None
        read.removed_users |= self._removed
        return read


# a full read's memberships, {group id: {member id: type}}, go in as JSON taken apart by
# SQLite: one statement, which lets go of the GIL while it runs (on the fold's thread,
# beside the planner), and costs less than an executemany here
MEMBERS_SQL = (
    "INSERT OR REPLACE INTO entra_members (group_id, member_id, member_type)"
    " SELECT g.key, m.key, m.value FROM json_each(?) AS g, json_each(g.value) AS m"
)
MEMBERS_PER_STATEMENT = 50_000  # (the JSON of 1M users' memberships at once: ~70 MB)


def _batches(members: Mapping[str, Mapping[str, str]], per: int) -> Iterator[dict[str, Mapping[str, str]]]:
    """Groups with their members, about ``per`` memberships at a time (a group is never split)."""
    batch: dict[str, Mapping[str, str]] = {}
    size = 0
    for gid, ms in members.items():
        batch[gid] = ms
        size += len(ms)
        if size >= per:
            yield batch
            batch, size = {}, 0
    if batch:
        yield batch


class Fold:
    """The buffered users going into the mirror (``FOLD_SQL``, then the read's removals), and
    the read's memberships (``MEMBERS_SQL``, then its removed ones): ``run``, once.

    It keeps no connection: the caller hands it one, or lends it the store's for the length
    of a block (``IncomingRead.alongside``, ``Store.lend``). ``take_view()`` hands over the
    mirror's view of Entra as the read leaves it (as ``Store.load_entra_view`` would read it
    back), if the read held its users.
    """

    def __init__(self, read: GraphRead) -> None:
        self._removed = list(read.removed_users)
        # a full read's memberships go in with its users (MEMBERS_SQL)
        self._members = read.members_added
        self._members_removed = read.members_removed
        # (not when some users came another way: a reader that does not stream, in tests)
        self._view = None if read.buffered_held is None or read.users else EntraView(
            users=read.buffered_held,
            groups=read.groups,
            # the mirror keeps no row for a group without members
            members={gid: members for gid, members in read.members_added.items() if members},
            assignments=read.assignments,
        )
        self.ran = False

    @property
    def has_view(self) -> bool:
        return self._view is not None

    def universe_bound(self, linked: set[str]) -> int:
        """At least as many users as a whole plan over the view acts on (``Store.plan_universe``):
        the read's users and the Entra ids local users are linked to (``linked``). Asked
        while the fold has its view (``has_view``)."""
        assert self._view is not None
        users = self._view.users
        return len(users) + len(linked.difference(users))

    def take_view(self) -> EntraView | None:
        view, self._view = self._view, None  # the caller keeps what it needs, not all of it
        return view

    def run(self, c: sqlite3.Connection) -> None:
        if self.ran:
            return
        self.ran = True  # (once, even if it fails: the transaction rolls back after it)
        c.execute(FOLD_SQL)  # the temp table stays: only the read writes it, in its own transaction
        c.executemany("DELETE FROM entra_users WHERE id = ?", ((i,) for i in self._removed))
        for batch in _batches(self._members, MEMBERS_PER_STATEMENT):
            c.execute(MEMBERS_SQL, (orjson.dumps(batch).decode(),))
        c.executemany(
            "DELETE FROM entra_members WHERE group_id = ? AND member_id = ?",
            ((gid, mid) for gid, ms in self._members_removed.items() for mid in ms),
        )
        self._members, self._members_removed = {}, {}
