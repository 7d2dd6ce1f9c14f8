"""A full read's users go to a temp table as their pages arrive, not into Python objects.

A full read carries every user of the tenant, assigned or not: 1M users held as
``EntraUser`` objects cost ~400 MB before the planner has looked at one of them. The
mirror is where they end up anyway, so ``StagedRead`` writes each users page into
``temp.staged_users`` during the read (outside the cycle's transaction: temp tables are
private to the connection, need no lock on the store and no fsync), and
``Store.apply_read`` folds that table into ``entra_users`` inside the transaction with one
``INSERT … SELECT`` in key order. A read that fails leaves only the temp table, which the
next read (or closing the connection) drops: nothing reaches the mirror (R14).

Everything else (assignments, groups and members, and every page of an incremental read)
is small, and the scoped planner needs it in hand: it stays in a ``ReadAccumulator``.
"""

from __future__ import annotations

import threading

from ..errors import SourceError
from ..model import GraphRead
from ..source.pages import GraphPage, ReadAccumulator

_COLUMNS = "id, upn, display_name, mail, enabled, user_type"

# the last occurrence of a user in the read wins (delta replays), and a removal drops it;
# rows come out in key order, so entra_users (WITHOUT ROWID, keyed by id) is filled by
# appending instead of by inserts at random places in its B-tree
FOLD_SQL = f"""
INSERT OR REPLACE INTO main.entra_users ({_COLUMNS})
SELECT {_COLUMNS} FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY seq DESC) AS latest FROM temp.staged_users
) WHERE latest = 1 AND NOT removed ORDER BY id
"""


class StagedRead:
    """``on_page`` sink for one cycle's read (see the module docstring).

    ``full``: whether the read starts as a full one (no delta links). A ``reset`` page (a
    stored link expired) turns it into one and drops what came before.
    """

    def __init__(self, conn, *, full: bool) -> None:  # conn: sqlite3.Connection
        self._conn = conn
        self._full = full
        self._acc = ReadAccumulator(full=full)
        self._staged = 0
        # the daemon may abandon a read that goes on in its thread: after ``abandon`` no
        # page touches the connection again (the cycle goes on to use it, then closes it)
        self._lock = threading.Lock()
        self._abandoned = False
        conn.execute("DROP TABLE IF EXISTS temp.staged_users")
        conn.execute(
            "CREATE TEMP TABLE staged_users (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, upn TEXT, "
            "display_name TEXT, mail TEXT, enabled INTEGER NOT NULL, user_type TEXT, removed INTEGER NOT NULL)"
        )

    def add(self, page: GraphPage) -> None:
        with self._lock:
            if self._abandoned:
                raise SourceError("the read was abandoned", kind="cancelled")
            if page.kind == "reset":
                self._full = True
                self._acc = ReadAccumulator(full=True)
                self._conn.execute("DELETE FROM temp.staged_users")
                self._staged = 0
                return
            if self._full and (page.users or page.removed_users):
                self._stage(page)
                page.users, page.removed_users = [], []
            self._acc.add(page)

    def _stage(self, page: GraphPage) -> None:
        rows = [(u.id, u.user_principal_name, u.display_name, u.mail, int(u.account_enabled), u.user_type, 0) for u in page.users]
        rows += [(uid, None, None, None, 0, None, 1) for uid in page.removed_users]
        self._conn.executemany(
            "INSERT INTO temp.staged_users (id, upn, display_name, mail, enabled, user_type, removed) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._staged += len(rows)

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True

    def finish(self, read: GraphRead) -> GraphRead:
        """The whole read: what the source returned, plus what its pages brought here.

        A reader that does not stream (tests, benches) returns everything in ``read``; the
        two are merged either way.
        """
        got = self._acc.finish()
        read.users.update(got.users)
        read.removed_users |= got.removed_users
        read.groups.update(got.groups)
        read.removed_groups |= got.removed_groups
        read.members_added.update(got.members_added)
        read.members_removed.update(got.members_removed)
        read.assignments.update(got.assignments)
        read.users_staged = self._staged
        return read
