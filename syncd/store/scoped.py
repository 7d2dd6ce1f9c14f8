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

from collections.abc import Callable

from ..model import (
    ADMIN_GROUP,
    Directory,
    EntraUser,
    EntraView,
    GraphRead,
)
from .db import ENTRA_USER_SQL, LOCAL_USER_SQL, Store, entra_user, local_user, select_in

Touched = tuple[set[str], set[str]]  # Entra users, Entra groups


def touched_before(
    store: Store, read: GraphRead, old_assignments: dict[str, str], *, transitive: bool, scope_all: bool
) -> Touched | None:
    """Before the read is folded into the mirror: the Entra users and groups it may affect.

    Returns None when the read may reach further than its own objects (plan in full):
    ``transitive`` membership, or ``scope_all`` (scope = "all") and groups changed.
    """
    if read.full or transitive:
        return None
    if any(kind == "group" for ms in read.members_added.values() for kind in ms.values()):
        return None  # nesting changed
    changed_principals = {
        pid for pid in set(old_assignments) | set(read.assignments) if old_assignments.get(pid) != read.assignments.get(pid)
    }
    groups = set(read.groups) | read.removed_groups | set(read.members_added) | set(read.members_removed)
    if scope_all and (read.groups or read.removed_groups):
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
    users |= {r[0] for r in select_in(store, "SELECT member_id FROM entra_members WHERE group_id IN ({})", whole_groups)}
    return users, groups


def scoped_views(
    store: Store, touched: Touched, names_claimed: Callable[[EntraUser], set[str]]
) -> tuple[EntraView, Directory]:
    """After the read is in the mirror: the planner's inputs, limited to what was touched,
    with what the rules that look at other objects need (``plan.rules.names_claimed``)."""
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
    entra_users = {r[0]: entra_user(r) for r in select_in(store, ENTRA_USER_SQL + " WHERE id IN ({})", users)}
    # R6 and R6a: local users who hold a name one of these users claims
    names: set[str] = set()
    for u in entra_users.values():
        names |= names_claimed(u)
    local_rows = select_in(store, LOCAL_USER_SQL + " WHERE entra_id IN ({})", users)
    local_rows += c.execute(LOCAL_USER_SQL + " WHERE entra_id IS NULL").fetchall()
    # NOCASE (ASCII only, as lower() was) lets SQLite look the names up in their indexes
    local_rows += select_in(store, LOCAL_USER_SQL + " WHERE user_name COLLATE NOCASE IN ({}) OR email COLLATE NOCASE IN ({})", names)
    local_users = {r[0]: local_user(r) for r in local_rows}
    # their Entra side too, so the planner sees every linked user it is given whole
    extra = {u.entra_id for u in local_users.values() if u.entra_id and u.entra_id not in entra_users}
    for r in select_in(store, ENTRA_USER_SQL + " WHERE id IN ({})", extra):
        entra_users[r[0]] = entra_user(r)
    return store.load_entra_view(entra_users), store.load_directory(local_users)


def guards_view(store: Store) -> Directory:
    """All the guards look at (R12, R15): Administrators' members, every group, and the
    whole directory's count of active managed users."""
    directory = store.load_directory(store.administrators())
    directory.active_managed = store.conn.execute("SELECT count(*) FROM users WHERE managed = 1 AND status = 'active'").fetchone()[0]
    return directory
