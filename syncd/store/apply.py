"""Apply a guarded plan to the directory, inside the cycle's transaction.

Each change is applied on its own; one that the database refuses is marked ``failure`` and the
rest go on (the cycle ends ``partial``). Staged and held changes are not applied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from ..model import Change
from .db import Store

BATCHED = frozenset({("user", "create"), ("group", "create"), ("membership", "add_member")})
REBUILD_INDEXES_AT = 10_000  # rows in one batch of inserts


def _secondary_indexes(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    """The table's own CREATE INDEX statements (not those of UNIQUE or PRIMARY KEY)."""
    return conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)).fetchall()


class Applier:
    def __init__(self, store: Store, cycle_id: str, now: str):
        self.c = store.conn
        self.cycle_id = cycle_id
        self.now = now
        self.group_ids: dict[str, int] = {}
        self.user_ids: dict[str, int] = {}

    def apply(self, changes: list[Change]) -> None:
        run: list[Change] = []  # consecutive changes of one batchable kind
        for change in changes:
            kind = (change.object_type, change.action)
            if run and (kind != (run[0].object_type, run[0].action) or change.status != "success"):
                self._apply_run(run)
                run = []
            if change.status == "success" and kind in BATCHED:
                run.append(change)
                continue
            if change.status == "staged":
                self._stage(change)
                continue
            if change.status != "success" or change.action == "skip":
                continue
            self._apply_one(change)
        if run:
            self._apply_run(run)

    def _apply_one(self, change: Change) -> None:
        try:
            self.c.execute("SAVEPOINT change")
            getattr(self, f"_{change.object_type}_{change.action}")(change)
            self.c.execute("RELEASE change")
        except (sqlite3.Error, LookupError) as exc:
            self.c.execute("ROLLBACK TO change")
            self.c.execute("RELEASE change")
            self._failed(change, exc)

    @staticmethod
    def _failed(change: Change, exc: Exception) -> None:
        change.status = "failure"
        change.reason = f"{change.reason}; failed: {exc}"

    # ---- batches: a full cycle creates every user and membership at once. One
    # executemany per run instead of a SAVEPOINT + INSERT per change (measured at 100k
    # users: see BENCHMARKS.md). A run the database refuses is rolled back and applied one
    # change at a time, so a refused change still fails alone.
    def _apply_run(self, run: list[Change]) -> None:
        batch = getattr(self, f"_batch_{run[0].object_type}_{run[0].action}")
        if len(run) < 2 or not batch(run):
            for change in run:
                self._apply_one(change)

    def _batch_user_create(self, run: list[Change]) -> bool:
        return self._batch_create(
            run, "users", self.user_ids,
            lambda ch, local_id: (local_id, ch.entra_id, ch.values["user_name"], ch.values["display_name"], ch.values["email"], self.now, self.now, self.cycle_id),
            "INSERT INTO users (id, entra_id, user_name, display_name, email, status, managed, created_at, updated_at, last_cycle_id)"
            " VALUES (?, ?, ?, ?, ?, 'active', 1, ?, ?, ?)",
        )

    def _batch_group_create(self, run: list[Change]) -> bool:
        # one at a time, each in its savepoint, 20k groups took 20 s (a 1M-user tenant)
        return self._batch_create(
            run, "groups", self.group_ids,
            lambda ch, local_id: (local_id, ch.entra_id, ch.values["name"], self.now, self.now),
            "INSERT INTO groups (id, entra_id, name, managed, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)",
        )

    def _batch_create(
        self, run: list[Change], table: str, ids_by_entra: dict[str, int], row: Callable[[Change, int], tuple], sql: str,
    ) -> bool:
        """Insert a run of new users or groups; each change learns its local id.

        The ids are given, counting on from the table's largest (what SQLite would pick one
        insert at a time), so that none has to be read back (100k users: ~0.07 s).
        """
        if len({ch.entra_id for ch in run}) != len(run) or any(not ch.entra_id for ch in run):
            return False
        first = self.c.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]
        rows = [row(ch, local_id) for local_id, ch in enumerate(run, first)]
        if not self._executemany(sql, rows, self._to_rebuild(table, len(rows))):
            return False
        for local_id, ch in enumerate(run, first):
            ch.local_id = ids_by_entra[ch.entra_id or ""] = local_id
        return True

    def _batch_membership_add_member(self, run: list[Change]) -> bool:
        rows, resolved = [], []
        for ch in run:
            try:
                rows.append((self._resolve(ch.group_ref, self.group_ids, "group"), self._resolve(ch.user_ref, self.user_ids, "user")))
                resolved.append(ch)
            except LookupError as exc:
                self._failed(ch, exc)
        rows.sort()  # in key order: appended to the table's B-tree, not inserted at random places
        if self._executemany("INSERT OR IGNORE INTO memberships (group_id, user_id) VALUES (?, ?)", rows, self._to_rebuild("memberships", len(rows))):
            return True
        for ch in resolved:
            self._apply_one(ch)
        return True

    def _to_rebuild(self, table: str, inserting: int) -> list[tuple[str, str]]:
        """The indexes to drop before a batch and build after it: all of the table's own
        when the batch is large next to what the table holds already.

        A first cycle (or a slice of one, cycle.py) fills tables that hold few rows yet:
        building an index once, sorted, beats inserting into it at random places (100k
        users into an empty table: 1.50 -> 0.93 s).
        """
        # (count(*) reads the whole table: asked only when the batch is big enough to matter)
        if inserting >= REBUILD_INDEXES_AT and inserting * 2 >= self.c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]:
            return _secondary_indexes(self.c, table)
        return []

    def _executemany(self, sql: str, rows: list[tuple], rebuild: Sequence[tuple[str, str]] = ()) -> bool:
        """``rebuild``: (name, CREATE INDEX sql) of indexes to drop before and build after."""
        self.c.execute("SAVEPOINT batch")
        try:
            for name, _ in rebuild:
                self.c.execute(f'DROP INDEX "{name}"')
            self.c.executemany(sql, rows)
            for _, create in rebuild:
                self.c.execute(create)
        except sqlite3.Error:
            self.c.execute("ROLLBACK TO batch")
            self.c.execute("RELEASE batch")
            return False
        self.c.execute("RELEASE batch")
        return True

    # ---- users
    def _user_create(self, ch: Change) -> None:
        v = ch.values
        cur = self.c.execute(
            "INSERT INTO users (entra_id, user_name, display_name, email, status, managed, created_at, updated_at, last_cycle_id)"
            " VALUES (?, ?, ?, ?, 'active', 1, ?, ?, ?)",
            (ch.entra_id, v["user_name"], v["display_name"], v["email"], self.now, self.now, self.cycle_id),
        )
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

    _user_reactivate = _user_update

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
            raise LookupError(f"no {kind} given")
        where, key = ref
        if where == "local":
            return int(key)
        if key in table:
            return table[key]  # type: ignore[index]
        sql = "SELECT id FROM users WHERE entra_id = ?" if kind == "user" else "SELECT id FROM groups WHERE entra_id = ?"
        row = self.c.execute(sql, (key,)).fetchone()
        if row is None:
            raise LookupError(f"the {kind} {key} is not in the local directory (its own change failed)")
        return row[0]

    def _membership_add_member(self, ch: Change) -> None:
        gid = self._resolve(ch.group_ref, self.group_ids, "group")
        uid = self._resolve(ch.user_ref, self.user_ids, "user")
        self.c.execute("INSERT OR IGNORE INTO memberships (group_id, user_id) VALUES (?, ?)", (gid, uid))

    def _membership_remove_member(self, ch: Change) -> None:
        gid = self._resolve(ch.group_ref, self.group_ids, "group")
        uid = self._resolve(ch.user_ref, self.user_ids, "user")
        self.c.execute("DELETE FROM memberships WHERE group_id = ? AND user_id = ?", (gid, uid))

    # ---- invites (R13)
    def _invite_revoke(self, ch: Change) -> None:
        self.c.execute("UPDATE invites SET status = 'revoked', updated_at = ? WHERE id = ? AND status = 'open'", (self.now, ch.local_id))
