"""Apply a guarded plan to the directory, inside the cycle's transaction.

Each change is applied on its own; one that the database refuses is marked ``failure`` and the
rest go on (the cycle ends ``partial``). Staged and held changes are not applied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import orjson

from ..model import Change
from .db import Store

REBUILD_INDEXES_AT = 10_000  # rows in one batch of inserts

# one change at a time
USER_SQL = (
    "INSERT INTO users (entra_id, user_name, display_name, email, status, managed, created_at, updated_at, last_cycle_id)"
    " VALUES (?, ?, ?, ?, 'active', 1, ?, ?, ?)"
)
MEMBERSHIP_SQL = "INSERT OR IGNORE INTO memberships (group_id, user_id) VALUES (?, ?)"

# a batch of new users or memberships: one statement over a JSON array of its rows, in the
# apply's own thread as behind the report (_Behind), where SQLite takes it apart without the GIL
ROWS_PER_STATEMENT = 25_000  # (SQLite copies the JSON, then parses it whole: ~5 MB at 25k users)
USERS_JSON_SQL = (  # (the rows of _user_row)
    "INSERT INTO users (id, entra_id, user_name, display_name, email, status, managed, created_at, updated_at, last_cycle_id)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, 'active', 1, ?2, ?2, ?3 FROM json_each(?1)"
)
GROUPS_JSON_SQL = (  # (the rows of _group_row)
    "INSERT INTO groups (id, entra_id, name, managed, created_at, updated_at)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, 1, ?2, ?2 FROM json_each(?1)"
)
MEMBERSHIPS_JSON_SQL = "INSERT OR IGNORE INTO memberships (group_id, user_id) SELECT value ->> 0, value ->> 1 FROM json_each(?)"

# batches at least this long that end an apply run behind it (_Behind)
BEHIND_AT = 1_000
BEHIND = frozenset({("user", "create"), ("membership", "add_member")})


def _secondary_indexes(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    """The table's own CREATE INDEX statements (not those of UNIQUE or PRIMARY KEY)."""
    return conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)).fetchall()


class MissingObject(LookupError):
    """A membership's group or user is not in the local directory (its own change failed)."""


class Applier:
    def __init__(self, store: Store, cycle_id: str, now: str):
        self.store = store
        self.cycle_id = cycle_id
        self.now = now
        self.group_ids: dict[str, int] = {}
        self.user_ids: dict[str, int] = {}

    @property
    def c(self) -> sqlite3.Connection:
        return self.store.conn  # (through the store: refused while it is lent, Store.lend)

    def apply(self, changes: list[Change], meanwhile: Callable[[], None] | None = None) -> bool:
        """Apply the changes, in order.

        ``meanwhile``: work that needs no store (the report's entries), run while the last
        batches are written, when the apply ends with big ones (a first cycle's users and
        memberships): they run behind (``_Behind``). It sees the changes as if those batches
        succeed. Returns whether it ran and the changes stayed as it saw them: a batch the
        database refuses is applied one change at a time after it, and may end otherwise.
        """
        steps = list(_steps(changes))
        ahead = len(steps) - (_tail_behind(steps) if meanwhile is not None else 0)
        for step in steps[:ahead]:
            self._apply_step(step)
        if ahead == len(steps):
            return False
        assert meanwhile is not None
        behind = _Behind.start(self, steps[ahead:])
        if behind is not None and not behind.write_while(self.store, meanwhile):
            return True
        for step in _steps([c for run in steps[ahead:] for c in run]):  # (anew: a membership may have failed)
            self._apply_step(step)
        return False

    def _apply_step(self, step: list[Change]) -> None:
        change = step[0]
        if change.status == "success" and (change.object_type, change.action) in BATCHED:
            self._apply_run(step)
        elif change.status == "staged":
            self._stage(change)
        elif change.status == "success" and change.action != "skip":
            self._apply_one(change)

    def _apply_one(self, change: Change) -> None:
        try:
            self.c.execute("SAVEPOINT change")
            _ONE[change.object_type, change.action](self, change)
            self.c.execute("RELEASE change")
        except (sqlite3.Error, MissingObject) as exc:
            self.c.execute("ROLLBACK TO change")
            self.c.execute("RELEASE change")
            self._failed(change, exc)

    @staticmethod
    def _failed(change: Change, exc: Exception) -> None:
        change.status = "failure"
        change.failure = str(exc)
        change.reason = f"{change.reason}; failed: {exc}"

    # ---- batches: a full cycle creates every user and membership at once. One
    # executemany per run instead of a SAVEPOINT + INSERT per change (BENCHMARKS.md). A
    # run the database refuses is rolled back and applied one change at a time, so a
    # refused change still fails alone.
    def _apply_run(self, run: list[Change]) -> None:
        batch = _BATCH[run[0].object_type, run[0].action]
        if len(run) < 2 or not batch(self, run):
            for change in run:
                self._apply_one(change)

    # (the ids of new users and groups are given, counting on from the table's largest, what
    # SQLite would pick one insert at a time, so that none has to be read back)
    def _batch_user_create(self, run: list[Change]) -> bool:
        return self._batch_create(run, self._next_id("users"), self._users_work, self.user_ids)

    def _batch_group_create(self, run: list[Change]) -> bool:
        return self._batch_create(run, self._next_id("groups"), self._groups_work, self.group_ids)

    def _batch_create(self, run: list[Change], first: int, work_of: Callable[[list[Change], int], Work | None],
                      ids: dict[str, int]) -> bool:
        if not _numbered_by_entra_id(run):
            return False
        work = work_of(run, first)
        if work is None or not self._bulk(work):
            return False
        for local_id, ch in enumerate(run, first):
            ch.local_id = ids[ch.entra_id or ""] = local_id
        return True

    def _users_work(self, run: list[Change], first: int) -> Work | None:
        """A run of new users, numbered from ``first``, as ``USERS_JSON_SQL`` statements."""
        return self._json_work("users", USERS_JSON_SQL, _user_row, run, first, self.now, self.cycle_id)

    def _groups_work(self, run: list[Change], first: int) -> Work | None:
        """A run of new groups, numbered from ``first``, as ``GROUPS_JSON_SQL`` statements."""
        return self._json_work("groups", GROUPS_JSON_SQL, _group_row, run, first, self.now)

    def _json_work(self, table: str, sql: str, row: Callable[[Change, int], tuple], run: list[Change], first: int,
                   *parameters: object) -> Work | None:
        """``run``'s rows (``row``), numbered from ``first``, as ``sql`` over JSON arrays of
        them; None with U+0000 in it (SQLite's JSON ends a string there: one at a time instead)."""
        texts = []
        for at in range(0, len(run), ROWS_PER_STATEMENT):
            text = orjson.dumps([row(ch, i) for i, ch in enumerate(run[at : at + ROWS_PER_STATEMENT], first + at)])
            if b"\\u0000" in text:
                return None
            texts.append(text.decode())
        return self._to_rebuild(table, len(run)), [(sql, (text, *parameters)) for text in texts]

    def _next_id(self, table: str) -> int:
        """The local id of the next new user or group: on from the table's largest, as
        SQLite numbers them one insert at a time."""
        return self.c.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]  # type: ignore[no-any-return]

    def _batch_membership_add_member(self, run: list[Change]) -> bool:
        work, resolved = self._members_work(run)
        if self._bulk(work):
            return True
        for ch in resolved:
            self._apply_one(ch)
        return True

    def _members_work(self, run: list[Change]) -> tuple[Work, list[Change]]:
        """A run of memberships as one ``MEMBERSHIPS_JSON_SQL`` statement, and the changes
        it holds (one whose group or user is missing fails here)."""
        rows, resolved = self._member_rows(run)
        return (self._to_rebuild("memberships", len(rows)), [(MEMBERSHIPS_JSON_SQL, (orjson.dumps(rows).decode(),))]), resolved

    def _member_rows(self, run: list[Change]) -> tuple[list[tuple[int, int]], list[Change]]:
        """(group id, user id) rows in key order, and the changes they are; a change whose
        group or user is missing fails here."""
        rows, resolved = [], []
        for ch in run:
            try:
                rows.append(self._pair(ch))
                resolved.append(ch)
            except MissingObject as exc:
                self._failed(ch, exc)
        rows.sort()  # in key order: appended to the table's B-tree, not inserted at random places
        return rows, resolved

    def _to_rebuild(self, table: str, inserting: int) -> list[tuple[str, str]]:
        """The indexes to drop before a batch and build after it: all of the table's own
        when the batch is large next to what the table holds already.

        A first cycle (or a slice of one, cycle.py) fills tables that hold few rows yet:
        building an index once, sorted, beats inserting into it at random places.
        """
        # (count(*) reads the whole table: asked only when the batch is big enough to matter)
        if inserting >= REBUILD_INDEXES_AT and inserting * 2 >= self.c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:
            return _secondary_indexes(self.c, table)
        return []

    def _bulk(self, work: Work) -> bool:
        """Write one batch (``_write``) in a savepoint; False when the database refused it
        (then nothing of it is in)."""
        self.c.execute("SAVEPOINT batch")
        try:
            _write(self.c, [work])
        except sqlite3.Error:
            self.c.execute("ROLLBACK TO batch")
            self.c.execute("RELEASE batch")
            return False
        self.c.execute("RELEASE batch")
        return True

    # ---- users
    def _user_create(self, ch: Change) -> None:
        v = ch.values
        cur = self.c.execute(USER_SQL, (ch.entra_id, v["user_name"], v["display_name"], v["email"], self.now, self.now, self.cycle_id))
        ch.local_id = cur.lastrowid
        self.user_ids[ch.entra_id or ""] = cur.lastrowid or 0

    def _update_user_row(self, ch: Change, extra: str = "") -> None:
        v = ch.values
        self.c.execute(
            f"UPDATE users SET user_name = ?, display_name = ?, email = ?, status = ?, updated_at = ?, last_cycle_id = ?{extra}"
            " WHERE id = ?",
            (v["user_name"], v["display_name"], v["email"], v["status"], self.now, self.cycle_id, ch.local_id),
        )

    def _user_adopt(self, ch: Change) -> None:
        self.c.execute("UPDATE users SET entra_id = ?, managed = 1 WHERE id = ?", (ch.entra_id, ch.local_id))
        self._update_user_row(ch)

    def _user_update(self, ch: Change) -> None:
        self._update_user_row(ch)

    def _user_deactivate(self, ch: Change) -> None:
        self._update_user_row(ch)
        # a deactivated user leaves its groups (R11); the entry records which
        groups = [r[0] for r in self.c.execute(
            "SELECT g.name FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name",
            (ch.local_id,),
        )]
        if groups:
            self.c.execute("DELETE FROM memberships WHERE user_id = ?", (ch.local_id,))
            ch.modified = {**ch.modified, "groups": (groups, [])}
        self.c.execute("DELETE FROM staged_deactivations WHERE user_id = ?", (ch.local_id,))

    def _stage(self, ch: Change) -> None:
        self.c.execute(
            "INSERT OR REPLACE INTO staged_deactivations (entra_id, user_id, cycle_id, reason) VALUES (?, ?, ?, ?)",
            (ch.entra_id, ch.local_id, self.cycle_id, ch.reason),
        )

    # ---- groups
    def _group_create(self, ch: Change) -> None:
        cur = self.c.execute(
            "INSERT INTO groups (entra_id, name, managed, created_at, updated_at) VALUES (?, ?, 1, ?, ?)",
            (ch.entra_id, ch.values["name"], self.now, self.now),
        )
        ch.local_id = cur.lastrowid
        self.group_ids[ch.entra_id or ""] = cur.lastrowid or 0

    def _group_adopt(self, ch: Change) -> None:
        self.c.execute(
            "UPDATE groups SET entra_id = ?, managed = 1, updated_at = ? WHERE id = ?", (ch.entra_id, self.now, ch.local_id)
        )

    def _group_update(self, ch: Change) -> None:
        if "name" in ch.values:
            self.c.execute("UPDATE groups SET name = ?, updated_at = ? WHERE id = ?", (ch.values["name"], self.now, ch.local_id))
        if ch.values.get("managed") is False:
            self.c.execute("UPDATE groups SET managed = 0, entra_id = NULL, updated_at = ? WHERE id = ?", (self.now, ch.local_id))

    def _group_delete(self, ch: Change) -> None:
        self.c.execute("DELETE FROM memberships WHERE group_id = ?", (ch.local_id,))
        self.c.execute("DELETE FROM groups WHERE id = ?", (ch.local_id,))

    # ---- memberships
    def _resolve(self, ref: tuple[str, str | int] | None, table: dict[str, int], kind: str) -> int:
        if ref is None:
            raise MissingObject(f"no {kind} given")
        where, key = ref
        if where == "local":
            return int(key)
        if key in table:
            return table[key]  # type: ignore[index]
        sql = "SELECT id FROM users WHERE entra_id = ?" if kind == "user" else "SELECT id FROM groups WHERE entra_id = ?"
        row = self.c.execute(sql, (key,)).fetchone()
        if row is None:
            raise MissingObject(f"the {kind} {key} is not in the local directory (its own change failed)")
        return row[0]

    def _membership_add_member(self, ch: Change) -> None:
        self.c.execute(MEMBERSHIP_SQL, self._pair(ch))

    def _membership_remove_member(self, ch: Change) -> None:
        self.c.execute("DELETE FROM memberships WHERE group_id = ? AND user_id = ?", self._pair(ch))

    def _pair(self, ch: Change) -> tuple[int, int]:
        """A membership's local (group id, user id)."""
        return self._resolve(ch.group_ref, self.group_ids, "group"), self._resolve(ch.user_ref, self.user_ids, "user")

    # ---- invites (R13)
    def _invite_revoke(self, ch: Change) -> None:
        self.c.execute("UPDATE invites SET status = 'revoked', updated_at = ? WHERE id = ? AND status = 'open'", (self.now, ch.local_id))


# what applies each kind of change: one at a time, and as a batch (a run of consecutive ones)
_ONE: dict[tuple[str, str], Callable[[Applier, Change], None]] = {
    ("user", "create"): Applier._user_create,
    ("user", "adopt"): Applier._user_adopt,
    ("user", "update"): Applier._user_update,
    ("user", "reactivate"): Applier._user_update,
    ("user", "deactivate"): Applier._user_deactivate,
    ("group", "create"): Applier._group_create,
    ("group", "adopt"): Applier._group_adopt,
    ("group", "update"): Applier._group_update,
    ("group", "delete"): Applier._group_delete,
    ("membership", "add_member"): Applier._membership_add_member,
    ("membership", "remove_member"): Applier._membership_remove_member,
    ("invite", "revoke"): Applier._invite_revoke,
}
_BATCH: dict[tuple[str, str], Callable[[Applier, list[Change]], bool]] = {
    ("user", "create"): Applier._batch_user_create,
    ("group", "create"): Applier._batch_group_create,
    ("membership", "add_member"): Applier._batch_membership_add_member,
}
BATCHED = frozenset(_BATCH)


def _steps(changes: list[Change]) -> Iterator[list[Change]]:
    """The changes as the apply takes them: runs of consecutive batchable ones of one kind,
    and every other change alone."""
    run: list[Change] = []
    for change in changes:
        kind = (change.object_type, change.action)
        if run and (kind != (run[0].object_type, run[0].action) or change.status != "success"):
            yield run
            run = []
        if change.status == "success" and kind in BATCHED:
            run.append(change)
        else:
            yield [change]
    if run:
        yield run


def _writes(step: list[Change]) -> bool:
    return step[0].status == "staged" or (step[0].status == "success" and step[0].action != "skip")


def _tail_behind(steps: list[list[Change]]) -> int:
    """How many of the last steps can run behind: big user or membership batches, and
    changes that write nothing (skips, failures held back)."""
    n = batches = 0
    for step in reversed(steps):
        if not _writes(step):
            n += 1
        elif (step[0].object_type, step[0].action) in BEHIND and len(step) >= BEHIND_AT:
            n += 1
            batches += 1
        else:
            break
    return n if batches else 0


def _user_row(ch: Change, local_id: int) -> tuple[int, str | None, object, object, object]:
    """A new user's own columns (id, entra_id, user_name, display_name, email)."""
    return local_id, ch.entra_id, ch.values["user_name"], ch.values["display_name"], ch.values["email"]


def _group_row(ch: Change, local_id: int) -> tuple[int, str | None, object]:
    """A new group's own columns (id, entra_id, name)."""
    return local_id, ch.entra_id, ch.values["name"]


def _numbered_by_entra_id(run: list[Change]) -> bool:
    """Whether a run of creates can go in as one batch: each has an Entra id, its own."""
    return len({ch.entra_id for ch in run}) == len(run) and all(ch.entra_id for ch in run)


# a batch: (indexes to drop and build again, [(statement, its parameters)])
Work = tuple[list[tuple[str, str]], list[tuple[str, tuple[object, ...]]]]


def _write(conn: sqlite3.Connection, batches: list[Work]) -> None:
    """Each batch's statements, its indexes dropped before and built after (``_to_rebuild``)."""
    for rebuild, statements in batches:
        for name, _ in rebuild:
            conn.execute(f'DROP INDEX "{name}"')
        while statements:  # (each JSON text let go once it is in)
            sql, parameters = statements.pop(0)
            conn.execute(sql, parameters)
        for _, create in rebuild:
            conn.execute(create)


class _Behind:
    """The last batches of an apply (``Applier.apply``), written on a helper thread the
    store's connection is lent to (``Store.lend``).

    Each is one statement over a JSON array of its rows (``USERS_JSON_SQL``,
    ``MEMBERSHIPS_JSON_SQL``), with the indexes ``_to_rebuild`` names dropped before and
    built after: statements during which sqlite3 lets go of the GIL, so the cycle's thread
    builds the report meanwhile. The rows are made first, here, as the batches would make them, and
    the new users get the ids they would. It all goes in one savepoint, rolled back when the
    database refuses a batch (the apply then takes those changes as it takes a batch refused).
    """

    def __init__(self, applier: Applier, work: list[Work], new_users: list[Change]) -> None:
        self._user_ids = applier.user_ids
        self._work = work
        self._new_users = new_users

    @classmethod
    def start(cls, applier: Applier, steps: list[list[Change]]) -> _Behind | None:
        """The batches of ``steps``, ready to write, as the apply would write them
        (``_users_work``, ``_members_work``); None when they cannot run behind: a run of new
        users the batch would refuse anyway, or one it would take one at a time."""
        runs = [run for run in steps if _writes(run)]
        users: list[tuple[Work, int]] = []  # each user run's batch and first id
        next_id = applier._next_id("users")
        for run in runs:
            if run[0].object_type == "user":
                work = applier._users_work(run, next_id) if _numbered_by_entra_id(run) else None
                if work is None:
                    return None
                users.append((work, next_id))
                next_id += len(run)
        batches: list[Work] = []
        new_users: list[Change] = []
        for run in runs:
            if run[0].object_type == "user":
                work, first = users.pop(0)
                for local_id, ch in enumerate(run, first):  # the ids its rows carry
                    ch.local_id = applier.user_ids[ch.entra_id or ""] = local_id
                new_users += run
                batches.append(work)
            else:  # (after the users: their ids are known)
                batches.append(applier._members_work(run)[0])
        return cls(applier, batches, new_users)

    def write_while(self, store: Store, meanwhile: Callable[[], None]) -> bool:
        """Write the batches while ``meanwhile`` runs; True when the database refused one
        (then none is in)."""
        store.conn.execute("SAVEPOINT behind")
        try:
            with store.lend(self._write) as written:
                meanwhile()
            refused = written.result() is not None
        except BaseException:
            self._undo(store)
            raise
        if refused:
            self._undo(store)
        else:
            store.conn.execute("RELEASE behind")
        return refused

    def _write(self, conn: sqlite3.Connection) -> sqlite3.Error | None:
        """(on the borrowing thread) The batches; the error of one the database refused."""
        try:
            _write(conn, self._work)
        except sqlite3.Error as exc:
            return exc
        return None

    def _undo(self, store: Store) -> None:
        store.conn.execute("ROLLBACK TO behind")
        store.conn.execute("RELEASE behind")
        for ch in self._new_users:  # numbered again by the apply, one at a time
            ch.local_id = None
            self._user_ids.pop(ch.entra_id or "", None)
