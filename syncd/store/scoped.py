"""Scoped planning inputs: the slice of the mirror and the directory an incremental read touched.

When the previous cycle left nothing pending (the directory matched the mirror), a delta read
can only change what it names: the users it carries, the members it adds or removes, the
groups it changes, and the principals whose assignment changed. Loading just those objects
(and the few that decide R6, R12 and name clashes) lets the pure planner run over thousands of
objects instead of the whole tenant, with the same result: ``tests/perf/test_delta_property.py``
and the state-machine test compare it with full plans.

Anything that could reach further falls back to the full plan (``None``): transitive
membership, nested groups changing, security flags of groups in ``scope = "all"``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..model import (
    ADMIN_GROUP,
    Directory,
    EntraGroup,
    EntraUser,
    EntraView,
    GraphRead,
    LocalGroup,
    LocalUser,
)
from ..plan.rules import r5_map_attributes
from ..plan.settings import PlanSettings
from .db import Store

_CHUNK = 400  # two IN lists of 400 stay under SQLite's old limit of 999 parameters


def _chunks(items: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _in(store: Store, sql: str, ids: Iterable[str]) -> list[tuple]:
    """``sql`` with ``{}`` standing for an IN list (once or more), run over ids in chunks."""
    rows: list[tuple] = []
    uses = sql.count("{}")
    for batch in _chunks(ids):
        marks = ",".join("?" * len(batch))
        rows += store.conn.execute(sql.format(*[marks] * uses), batch * uses).fetchall()
    return rows


Touched = tuple[set[str], set[str]]  # Entra users, Entra groups


def touched_before(store: Store, read: GraphRead, settings: PlanSettings) -> Touched | None:
    """Before the read is folded into the mirror: the Entra users and groups it may affect.

    Returns None when the read may reach further than its own objects (plan in full).
    """
    if read.full or settings.group_members == "transitive":
        return None
    if any(kind == "group" for ms in read.members_added.values() for kind in ms.values()):
        return None  # nesting changed
    old_assignments = dict(store.conn.execute("SELECT principal_id, principal_type FROM entra_assignments").fetchall())
    changed_principals = {
        pid for pid in set(old_assignments) | set(read.assignments) if old_assignments.get(pid) != read.assignments.get(pid)
    }
    groups = set(read.groups) | read.removed_groups | set(read.members_added) | set(read.members_removed)
    if settings.scope == "all" and (read.groups or read.removed_groups):
        return None  # a group's security flag decides its scope here
    users = set(read.users) | read.removed_users
    users |= {mid for ms in read.members_added.values() for mid in ms}
    users |= {mid for ms in read.members_removed.values() for mid in ms}
    whole_groups = {pid for pid in changed_principals if pid in read.groups or old_assignments.get(pid) == "Group" or read.assignments.get(pid) == "Group"}
    whole_groups |= read.removed_groups
    users |= {pid for pid in changed_principals if pid not in whole_groups}
    groups |= whole_groups
    # every member of a group entering or leaving scope (or deleted) is touched: the mirror is
    # tenant-wide, so it already holds them, and a group new in this read brings its members
    # in members_added
    users |= {r[0] for r in _in(store, "SELECT member_id FROM entra_members WHERE group_id IN ({})", whole_groups)}
    return users, groups


def scoped_views(store: Store, touched: Touched, settings: PlanSettings) -> tuple[EntraView, Directory]:
    """After the read is in the mirror: the planner's inputs, limited to what was touched."""
    users = set(touched[0])
    c = store.conn
    # R12: Administrators' members decide whether a removal is held back
    users |= {
        r[0]
        for r in c.execute(
            "SELECT u.entra_id FROM memberships m JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id"
            " WHERE g.name = ? AND u.entra_id IS NOT NULL",
            (ADMIN_GROUP,),
        )
    }
    entra_users = {
        r[0]: EntraUser(r[0], r[1], r[2], r[3], bool(r[4]), r[5])
        for r in _in(store, "SELECT id, upn, display_name, mail, enabled, user_type FROM entra_users WHERE id IN ({})", users)
    }
    # R6 and name clashes: local users who hold a name one of these users maps to
    names: set[str] = set()
    for u in entra_users.values():
        mapped = r5_map_attributes(u, settings)
        if not isinstance(mapped, str):
            names |= {mapped.user_name.casefold(), mapped.email.casefold()}
    local_rows = _in(
        store,
        "SELECT id, entra_id, user_name, display_name, email, status, managed FROM users WHERE entra_id IN ({})",
        users,
    )
    local_rows += c.execute(
        "SELECT id, entra_id, user_name, display_name, email, status, managed FROM users WHERE entra_id IS NULL"
    ).fetchall()
    local_rows += _in(
        store,
        "SELECT id, entra_id, user_name, display_name, email, status, managed FROM users"
        " WHERE lower(user_name) IN ({}) OR lower(email) IN ({})",
        names,
    ) if names else []
    local_users = {r[0]: LocalUser(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in local_rows}
    # their Entra side too, so the planner sees every linked user it is given whole
    extra = {u.entra_id for u in local_users.values() if u.entra_id and u.entra_id not in entra_users}
    for r in _in(store, "SELECT id, upn, display_name, mail, enabled, user_type FROM entra_users WHERE id IN ({})", extra):
        entra_users[r[0]] = EntraUser(r[0], r[1], r[2], r[3], bool(r[4]), r[5])
    members: dict[str, dict] = {}
    for gid, mid, kind in _in(store, "SELECT group_id, member_id, member_type FROM entra_members WHERE member_id IN ({})", entra_users):
        members.setdefault(gid, {})[mid] = kind
    view = EntraView(
        users=entra_users,
        groups={r[0]: EntraGroup(r[0], r[1], bool(r[2])) for r in c.execute("SELECT id, display_name, security_enabled FROM entra_groups")},
        members=members,
        assignments=dict(c.execute("SELECT principal_id, principal_type FROM entra_assignments").fetchall()),
    )
    local_members: dict[int, set[int]] = {}
    for gid, uid in _in(store, "SELECT group_id, user_id FROM memberships WHERE user_id IN ({})", [str(i) for i in local_users]):
        local_members.setdefault(gid, set()).add(uid)
    directory = Directory(
        users=local_users,
        groups={r[0]: LocalGroup(r[0], r[1], r[2], bool(r[3])) for r in c.execute("SELECT id, entra_id, name, managed FROM groups")},
        members=local_members,
        enabled=store.enabled,
        invites=dict(c.execute("SELECT id, email FROM invites WHERE status = 'open'").fetchall()),
    )
    return view, directory


def active_managed_users(store: Store) -> int:
    return store.conn.execute("SELECT count(*) FROM users WHERE managed = 1 AND status = 'active'").fetchone()[0]
