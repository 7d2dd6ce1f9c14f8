"""Local directory commands (users, groups, invites) and the refusals of R13.

Once sync is enabled, managed users and groups belong to Entra ID: local commands may not
change them, and no new local users, groups or invites may be made.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import LocalActionRefused, UsageError
from ..model import ADMIN_GROUP
from .db import Store, utcnow

MANAGED_HINT = (
    "is managed by Entra ID: change it there (Entra admin center > Enterprise applications > "
    "this application > Users and groups, or the user's or group's own page); syncd applies it on the next cycle"
)
ENABLED_HINT = (
    "sync with Entra ID is enabled: users, groups and invites now come from Entra ID; "
    "assign them to the enterprise application instead"
)


def _row_dict(cur: sqlite3.Cursor, row: tuple) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cur.description, row, strict=True)}


def find_user(store: Store, ref: str) -> dict[str, Any]:
    """USER: a local id, an Entra object id, a user_name or an email (case-insensitive)."""
    c = store.conn
    cur = None
    if ref.isdigit():
        cur = c.execute("SELECT * FROM users WHERE id = ?", (int(ref),))
        row = cur.fetchone()
        if row:
            return _row_dict(cur, row)
    for sql in (
        "SELECT * FROM users WHERE entra_id = ? COLLATE NOCASE",
        "SELECT * FROM users WHERE user_name = ? COLLATE NOCASE ORDER BY status = 'active' DESC, id",
        "SELECT * FROM users WHERE email = ? COLLATE NOCASE ORDER BY status = 'active' DESC, id",
    ):
        cur = c.execute(sql, (ref,))
        row = cur.fetchone()
        if row:
            return _row_dict(cur, row)
    raise LocalActionRefused(f"no local user {ref!r} (give a local id, an Entra object id, a user_name or an email)")


def find_group(store: Store, ref: str) -> dict[str, Any]:
    """GROUP: a local id, an Entra object id or a name (case-insensitive)."""
    c = store.conn
    queries: list[tuple[str, int | str]] = [("SELECT * FROM groups WHERE id = ?", int(ref))] if ref.isdigit() else []
    queries += [("SELECT * FROM groups WHERE entra_id = ? COLLATE NOCASE", ref), ("SELECT * FROM groups WHERE name = ? COLLATE NOCASE", ref)]
    for sql, arg in queries:
        cur = c.execute(sql, (arg,))
        row = cur.fetchone()
        if row:
            return _row_dict(cur, row)
    raise LocalActionRefused(f"no local group {ref!r} (give a local id, an Entra object id or a name)")


def list_users(store: Store, status: str | None = None, *, user_id: int | None = None) -> list[dict[str, Any]]:
    """The users (with ``status``), or the one with local id ``user_id``, with their groups."""
    one = "" if user_id is None else " WHERE m.user_id = ?"
    groups: dict[int, list[str]] = {}
    for uid, name in store.conn.execute(
        f"SELECT m.user_id, g.name FROM memberships m JOIN groups g ON g.id = m.group_id{one} ORDER BY g.name",
        () if user_id is None else (user_id,),
    ):
        groups.setdefault(uid, []).append(name)
    clauses: list[str] = []
    args: list[object] = []
    if status:
        clauses.append("status = ?")
        args.append(status)
    if user_id is not None:
        clauses.append("id = ?")
        args.append(user_id)
    sql = "SELECT id, entra_id, user_name, display_name, email, status, managed FROM users"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return [
        {
            "id": r[0], "entra_id": r[1], "user_name": r[2], "display_name": r[3], "email": r[4],
            "status": r[5], "managed": bool(r[6]), "groups": groups.get(r[0], []),
        }
        for r in store.conn.execute(sql + " ORDER BY id", args)
    ]


def list_groups(store: Store, *, group_id: int | None = None) -> list[dict[str, Any]]:
    """The groups, or the one with local id ``group_id``, with their members."""
    one, args = ("", ()) if group_id is None else (" WHERE {} = ?", (group_id,))
    members: dict[int, list[str]] = {}
    for gid, name in store.conn.execute(
        "SELECT m.group_id, u.user_name FROM memberships m JOIN users u ON u.id = m.user_id"
        + one.format("m.group_id") + " ORDER BY u.user_name",
        args,
    ):
        members.setdefault(gid, []).append(name)
    return [
        {"id": r[0], "entra_id": r[1], "name": r[2], "managed": bool(r[3]), "members": members.get(r[0], [])}
        for r in store.conn.execute("SELECT id, entra_id, name, managed FROM groups" + one.format("id") + " ORDER BY id", args)
    ]


def user_counts(store: Store) -> dict[str, int]:
    """How many local users have each status (active, deactivated)."""
    return dict(store.conn.execute("SELECT status, count(*) FROM users GROUP BY status").fetchall())


def group_count(store: Store) -> int:
    return int(store.conn.execute("SELECT count(*) FROM groups").fetchone()[0])


def list_invites(store: Store) -> list[dict[str, Any]]:
    return [
        {"id": r[0], "email": r[1], "status": r[2], "created_at": r[3]}
        for r in store.conn.execute("SELECT id, email, status, created_at FROM invites ORDER BY id")
    ]


def _changed(store: Store) -> None:
    """A local change may change the next plan (adoption, R12): the next cycle plans in full."""
    store.set_meta("plan_clean", None)


def _refuse_when_enabled(store: Store, what: str) -> None:
    if store.enabled:
        raise LocalActionRefused(f"cannot {what}: {ENABLED_HINT}")


def add_user(store: Store, email: str, name: str | None) -> dict[str, Any]:
    email = email.strip()
    if "@" not in email:
        raise UsageError(f"EMAIL: {email!r} is not an email address")
    with store.transaction():
        _refuse_when_enabled(store, "add a local user")
        if store.conn.execute("SELECT 1 FROM users WHERE user_name = ? COLLATE NOCASE OR email = ? COLLATE NOCASE", (email, email)).fetchone():
            raise LocalActionRefused(f"a local user {email} already exists")
        now = utcnow()
        store.conn.execute(
            "INSERT INTO users (user_name, display_name, email, status, managed, created_at, updated_at) VALUES (?, ?, ?, 'active', 0, ?, ?)",
            (email, name, email, now, now),
        )
        _changed(store)
    return find_user(store, email)


def set_user_status(store: Store, ref: str, status: str) -> dict[str, Any]:
    with store.transaction():
        user = find_user(store, ref)
        verb = "activate" if status == "active" else "deactivate"
        if user["managed"]:
            raise LocalActionRefused(f"cannot {verb} user {user['user_name']}: it {MANAGED_HINT}")
        if status == "deactivated":
            _keep_an_administrator(store, user["id"], f"deactivate {user['user_name']}")
            store.conn.execute("DELETE FROM memberships WHERE user_id = ?", (user["id"],))
        store.conn.execute("UPDATE users SET status = ?, updated_at = ? WHERE id = ?", (status, utcnow(), user["id"]))
        _changed(store)
    return find_user(store, str(user["id"]))


def add_group(store: Store, name: str) -> dict[str, Any]:
    name = name.strip()
    if not name:
        raise UsageError("NAME: a group needs a name")
    with store.transaction():
        _refuse_when_enabled(store, "add a local group")
        if store.conn.execute("SELECT 1 FROM groups WHERE name = ? COLLATE NOCASE", (name,)).fetchone():
            raise LocalActionRefused(f"a local group named {name!r} already exists")
        now = utcnow()
        store.conn.execute("INSERT INTO groups (name, managed, created_at, updated_at) VALUES (?, 0, ?, ?)", (name, now, now))
        _changed(store)
    return find_group(store, name)


def change_member(store: Store, group_ref: str, user_ref: str, add: bool) -> None:
    with store.transaction():
        group = find_group(store, group_ref)
        user = find_user(store, user_ref)
        verb = "add a member to" if add else "remove a member from"
        if group["managed"]:
            raise LocalActionRefused(f"cannot {verb} group {group['name']}: it {MANAGED_HINT}")
        if add:
            if user["status"] != "active":
                raise LocalActionRefused(f"user {user['user_name']} is deactivated: activate it first")
            store.conn.execute("INSERT OR IGNORE INTO memberships (group_id, user_id) VALUES (?, ?)", (group["id"], user["id"]))
            _changed(store)
        else:
            if group["name"] == ADMIN_GROUP:
                _keep_an_administrator(store, user["id"], f"remove {user['user_name']} from {ADMIN_GROUP}")
            store.conn.execute("DELETE FROM memberships WHERE group_id = ? AND user_id = ?", (group["id"], user["id"]))
            _changed(store)


def _keep_an_administrator(store: Store, user_id: int, what: str) -> None:
    """R12 for local commands too: Administrators keeps at least one active member."""
    active = [
        r[0]
        for r in store.conn.execute(
            "SELECT u.id FROM memberships m JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id"
            " WHERE g.name = ? AND u.status = 'active'",
            (ADMIN_GROUP,),
        )
    ]
    if active == [user_id]:
        raise LocalActionRefused(f"cannot {what}: {ADMIN_GROUP} must keep at least one active member; add another first")


def add_invite(store: Store, email: str) -> dict[str, Any]:
    email = email.strip()
    if "@" not in email:
        raise UsageError(f"EMAIL: {email!r} is not an email address")
    with store.transaction():
        _refuse_when_enabled(store, "invite a user")
        now = utcnow()
        cur = store.conn.execute("INSERT INTO invites (email, status, created_at, updated_at) VALUES (?, 'open', ?, ?)", (email, now, now))
        _changed(store)
    return {"id": cur.lastrowid, "email": email, "status": "open", "created_at": now}


def entra_id_for_user(store: Store, ref: str) -> str | None:
    """The Entra object id a USER reference names (`sync --user`), where the store knows it.

    A local id, a user_name or an email of a linked local user gives its Entra id; so does a
    user of the mirror of Entra found by UPN, mail, or the user_name syncd gives a B2B guest
    (``alias@theirdomain.com`` for ``alias_theirdomain.com#EXT#@tenant``). None when the
    store does not know it: Graph is then asked for ``ref`` as an id or UPN.
    """
    ref = ref.strip()
    c = store.conn
    if ref.isdigit():
        row = c.execute("SELECT entra_id FROM users WHERE id = ?", (int(ref),)).fetchone()
        if row and row[0]:
            return str(row[0])
    for sql in (
        "SELECT entra_id FROM users WHERE entra_id = ? COLLATE NOCASE",
        "SELECT entra_id FROM users WHERE user_name = ? COLLATE NOCASE AND entra_id IS NOT NULL ORDER BY status = 'active' DESC, id",
        "SELECT entra_id FROM users WHERE email = ? COLLATE NOCASE AND entra_id IS NOT NULL ORDER BY status = 'active' DESC, id",
        "SELECT id FROM entra_users WHERE upn = ? COLLATE NOCASE",
        "SELECT id FROM entra_users WHERE mail = ? COLLATE NOCASE",
    ):
        row = c.execute(sql, (ref,)).fetchone()
        if row and row[0]:
            return str(row[0])
    alias, at, domain = ref.rpartition("@")
    if at and alias and domain:
        pattern = (alias + "_" + domain).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "#EXT#@%"
        row = c.execute("SELECT id FROM entra_users WHERE upn LIKE ? ESCAPE '\\'", (pattern,)).fetchone()
        if row:
            return str(row[0])
    return None


def match_user(store: Store, ref: str, entra_id: str | None) -> dict[str, Any] | None:
    """The local user ``ref`` names for explain: by Entra id, local id, user_name or email
    (an active one first); None when there is none."""
    c = store.conn
    queries: list[tuple[str, object]] = []
    if entra_id:
        queries.append(("SELECT * FROM users WHERE entra_id = ? COLLATE NOCASE", entra_id))
    if ref.isdigit():
        queries.append(("SELECT * FROM users WHERE id = ?", int(ref)))
    queries += [
        ("SELECT * FROM users WHERE entra_id = ? COLLATE NOCASE", ref),
        ("SELECT * FROM users WHERE user_name = ? COLLATE NOCASE ORDER BY status = 'active' DESC, id", ref),
        ("SELECT * FROM users WHERE email = ? COLLATE NOCASE ORDER BY status = 'active' DESC, id", ref),
    ]
    for sql, arg in queries:
        cur = c.execute(sql, (arg,))
        row = cur.fetchone()
        if row:
            return {d[0]: v for d, v in zip(cur.description, row, strict=True)}
    return None


def group_names_of(store: Store, user_id: int) -> list[str]:
    return [r[0] for r in store.conn.execute(
        "SELECT g.name FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.user_id = ? ORDER BY g.name", (user_id,))]


def staged_deactivation(store: Store, entra_id: str) -> tuple[str, str] | None:
    """(cycle id, reason) of the user's deactivation staged by R15, if one is."""
    row = store.conn.execute("SELECT cycle_id, reason FROM staged_deactivations WHERE entra_id = ?", (entra_id,)).fetchone()
    return (row[0], row[1]) if row else None
