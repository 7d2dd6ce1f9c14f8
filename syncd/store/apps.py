"""SCIM applications in the store (SPEC §7): the only SQL about them.

Per application (``app`` = its ``[[scim]]`` name): the application's id for each local user
and group it holds, what it holds as last pushed (or read, when linked or repaired), the
members pushed, the per-object failures waiting for a retry, and the last push.

Plain tuples in and out, so ``push/`` and ``store/`` stay peers: ``push.engine`` turns them
into its own types. A push commits a ``Batch`` of outcomes at a time (``commit``): after a
kill, what the store lacks is what R22's matching finds again in the application.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from .db import write_transaction

# (app_id, user_name, display_name, email, active, external_id)
UserRow = tuple[str, str, str | None, str | None, bool, str | None]
# (app_id, display_name, external_id, created)
GroupRow = tuple[str, str, str | None, bool]

IMMEDIATE_RETRIES = 2  # failures retried on the very next push
MAX_SKIP = 32  # pushes between tries at most (about a day at 40 minutes a cycle)


@dataclass
class Stored:
    """One application as the store remembers it."""

    users: dict[int, UserRow] = field(default_factory=dict)
    groups: dict[int, GroupRow] = field(default_factory=dict)
    members: dict[int, set[int]] = field(default_factory=dict)  # local group id -> local user ids


@dataclass
class Batch:
    """Outcomes to write together: links and values, members, failures."""

    users: dict[int, UserRow] = field(default_factory=dict)
    users_gone: set[int] = field(default_factory=set)  # links to objects the application no longer has
    groups: dict[int, GroupRow] = field(default_factory=dict)
    groups_gone: set[int] = field(default_factory=set)
    members_added: set[tuple[int, int]] = field(default_factory=set)  # (group id, user id)
    members_removed: set[tuple[int, int]] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)  # failure keys to forget
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (name, error)

    def __bool__(self) -> bool:
        return any((self.users, self.users_gone, self.groups, self.groups_gone, self.members_added, self.members_removed,
                    self.succeeded, self.failed))


def load(conn: sqlite3.Connection, app: str) -> Stored:
    stored = Stored()
    for uid, app_id, user_name, display_name, email, active, external_id in conn.execute(
        "SELECT user_id, app_id, user_name, display_name, email, active, external_id FROM app_users WHERE app = ?", (app,)
    ):
        stored.users[uid] = (app_id, user_name, display_name, email, bool(active), external_id)
    for gid, app_id, display_name, external_id, created in conn.execute(
        "SELECT group_id, app_id, display_name, external_id, created FROM app_groups WHERE app = ?", (app,)
    ):
        stored.groups[gid] = (app_id, display_name, external_id, bool(created))
    for gid, uid in conn.execute("SELECT group_id, user_id FROM app_members WHERE app = ?", (app,)):
        stored.members.setdefault(gid, set()).add(uid)
    return stored


def commit(conn: sqlite3.Connection, app: str, batch: Batch, *, push: int, now: str) -> None:
    """Write one batch of outcomes in one transaction. ``push``: this push's number (back-off)."""
    if not batch:
        return
    with write_transaction(conn, join=True):
        conn.executemany("DELETE FROM app_users WHERE app = ? AND user_id = ?", ((app, u) for u in batch.users_gone))
        conn.executemany("DELETE FROM app_members WHERE app = ? AND user_id = ?", ((app, u) for u in batch.users_gone))
        conn.executemany(
            "INSERT OR REPLACE INTO app_users (app, user_id, app_id, user_name, display_name, email, active, external_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((app, uid, *row[:4], int(row[4]), row[5]) for uid, row in batch.users.items()),
        )
        conn.executemany(
            "INSERT OR REPLACE INTO app_groups (app, group_id, app_id, display_name, external_id, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ((app, gid, row[0], row[1], row[2], int(row[3])) for gid, row in batch.groups.items()),
        )
        for gid in batch.groups_gone:
            conn.execute("DELETE FROM app_groups WHERE app = ? AND group_id = ?", (app, gid))
            conn.execute("DELETE FROM app_members WHERE app = ? AND group_id = ?", (app, gid))
        conn.executemany(
            "INSERT OR IGNORE INTO app_members (app, group_id, user_id) VALUES (?, ?, ?)",
            ((app, g, u) for g, u in batch.members_added),
        )
        conn.executemany(
            "DELETE FROM app_members WHERE app = ? AND group_id = ? AND user_id = ?",
            ((app, g, u) for g, u in batch.members_removed),
        )
        conn.executemany("DELETE FROM app_failures WHERE app = ? AND key = ?", ((app, k) for k in batch.succeeded))
        for key, (name, error) in batch.failed.items():
            row = conn.execute("SELECT attempts FROM app_failures WHERE app = ? AND key = ?", (app, key)).fetchone()
            attempts = (row[0] if row else 0) + 1
            skip = 0 if attempts <= IMMEDIATE_RETRIES else min(2 ** (attempts - IMMEDIATE_RETRIES), MAX_SKIP)
            conn.execute(
                "INSERT INTO app_failures (app, key, name, attempts, skip_until, last_error, first_failed_at, last_failed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app, key) DO UPDATE SET attempts = excluded.attempts,"
                " skip_until = excluded.skip_until, last_error = excluded.last_error, last_failed_at = excluded.last_failed_at",
                (app, key, name, attempts, push + skip, error, now, now),
            )


def failures(conn: sqlite3.Connection, app: str) -> dict[str, tuple[int, int, str | None]]:
    """The failures waiting: key -> (attempts, skip_until, last error)."""
    return {
        key: (attempts, until, error)
        for key, attempts, until, error in conn.execute(
            "SELECT key, attempts, skip_until, last_error FROM app_failures WHERE app = ?", (app,)
        )
    }


def forget_failures(conn: sqlite3.Connection, app: str, keys: set[str]) -> None:
    """Failures of objects the application no longer needs a change for."""
    if keys:
        with write_transaction(conn, join=True):
            conn.executemany("DELETE FROM app_failures WHERE app = ? AND key = ?", ((app, k) for k in keys))


def pushed_apps(conn: sqlite3.Connection) -> list[str]:
    """Every application that has a push on record, by name."""
    return [r[0] for r in conn.execute("SELECT app FROM app_pushes ORDER BY app")]


def pushes(conn: sqlite3.Connection, app: str) -> int:
    """How many pushes (not dry runs) this application has had."""
    row = conn.execute("SELECT pushes FROM app_pushes WHERE app = ?", (app,)).fetchone()
    return row[0] if row else 0


def start_push(conn: sqlite3.Connection, app: str) -> int:
    """Count a push that sends something; returns its number (1, 2, ...)."""
    with write_transaction(conn, join=True):
        conn.execute(
            "INSERT INTO app_pushes (app, pushes) VALUES (?, 1) ON CONFLICT (app) DO UPDATE SET pushes = pushes + 1",
            (app,),
        )
    return pushes(conn, app)


def finish_push(
    conn: sqlite3.Connection, app: str, *, cycle_id: str, status: str, ended_at: str, requests: int, errors: list[str]
) -> None:
    with write_transaction(conn, join=True):
        conn.execute(
            "INSERT INTO app_pushes (app, pushes, cycle_id, status, ended_at, requests, errors) VALUES (?, 0, ?, ?, ?, ?, ?)"
            " ON CONFLICT (app) DO UPDATE SET cycle_id = excluded.cycle_id, status = excluded.status,"
            " ended_at = excluded.ended_at, requests = excluded.requests, errors = excluded.errors",
            (app, cycle_id, status, ended_at, requests, json.dumps(errors)),
        )


def last_push(conn: sqlite3.Connection, app: str) -> dict[str, object] | None:
    """``{"cycle_id", "status", "ended_at", "requests", "errors"}`` of the last push, for status."""
    row = conn.execute("SELECT cycle_id, status, ended_at, requests, errors FROM app_pushes WHERE app = ?", (app,)).fetchone()
    if row is None or row[0] is None:
        return None
    return {"cycle_id": row[0], "status": row[1], "ended_at": row[2], "requests": row[3], "errors": json.loads(row[4] or "[]")}


def pending(conn: sqlite3.Connection, app: str) -> int:
    """How many objects wait for a push that failed (``status``'s "pending")."""
    return int(conn.execute("SELECT count(*) FROM app_failures WHERE app = ?", (app,)).fetchone()[0])


def user_state(conn: sqlite3.Connection, user_id: int) -> dict[str, dict[str, object]]:
    """A local user's state in each application (for ``explain``): app name -> its record."""
    out: dict[str, dict[str, object]] = {}
    for app, app_id, user_name, active in conn.execute(
        "SELECT app, app_id, user_name, active FROM app_users WHERE user_id = ?", (user_id,)
    ):
        out[app] = {"app_id": app_id, "user_name": user_name, "active": bool(active)}
    for app, attempts, error in conn.execute(
        "SELECT app, attempts, last_error FROM app_failures WHERE key = ?", (f"user:{user_id}",)
    ):
        out.setdefault(app, {})["failure"] = {"attempts": attempts, "error": error}
    return out
