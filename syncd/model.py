"""The data that flows through syncd: what Entra says, what the directory holds, what changes.

Graph (source) -> GraphRead -> EntraView -> plan (pure) -> guards -> apply (store) -> report

Everything here is plain, immutable-where-possible data with no I/O, so the planner can be
tested without a network or a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

# --------------------------------------------------------------------------- Entra side


class _Absent:
    """A property an object left out (R14a): "unchanged", never false or empty."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        raise TypeError("ABSENT has no truth value: lay the object over what is known first (overlay_user)")


ABSENT: Any = _Absent()


class EntraUser(NamedTuple):
    """A user as Graph returns it (only the properties syncd selects).

    A named tuple, not a frozen dataclass: a full read builds one per user of the tenant,
    and a tuple is built several times faster; it is also the row the store writes as is.

    From a read, any property may be ``ABSENT`` (a delta round sends only what changed);
    ``overlay_user`` lays it over what was known before. In the mirror, ``account_enabled``
    is True, False, or None when Graph has never said (then no rule acts on it).
    """

    id: str
    user_principal_name: str | None
    display_name: str | None
    mail: str | None
    account_enabled: bool | None
    user_type: str | None = None  # "Member" | "Guest"

    @property
    def partial(self) -> bool:
        return any(v is ABSENT for v in self)


@dataclass(frozen=True, slots=True)
class EntraGroup:
    id: str
    display_name: str | None
    security_enabled: bool = True

    @property
    def partial(self) -> bool:
        return self.display_name is ABSENT or self.security_enabled is ABSENT


def overlay_user(base: EntraUser | None, new: EntraUser) -> EntraUser:
    """``new`` laid over ``base`` (an earlier occurrence in the read, or what the mirror
    knew): each property ``new`` left out keeps ``base``'s (still ABSENT without one)."""
    if base is None or not new.partial:
        return new
    return new._replace(**{f: getattr(base, f) for f in new._fields if getattr(new, f) is ABSENT})


def overlay_group(base: EntraGroup | None, new: EntraGroup) -> EntraGroup:
    """As ``overlay_user``, for groups."""
    if base is None or not new.partial:
        return new
    return EntraGroup(
        new.id,
        base.display_name if new.display_name is ABSENT else new.display_name,
        base.security_enabled if new.security_enabled is ABSENT else new.security_enabled,
    )


def unknown_user(uid: str) -> EntraUser:
    """A user Graph has said nothing of: laid under a partial one that the mirror lacks."""
    return EntraUser(uid, None, None, None, None, None)


def unknown_group(gid: str) -> EntraGroup:
    """A group Graph has said nothing of (a group is security-enabled unless said otherwise)."""
    return EntraGroup(gid, None, True)


PrincipalType = Literal["User", "Group"]
MemberType = Literal["user", "group", "other"]


@dataclass
class GraphRead:
    """One cycle's read from Graph.

    ``full`` reads carry the complete state of users, groups and memberships; incremental
    reads carry only what changed since the stored delta links (users/groups upserted,
    ``removed_*`` gone, ``members_added``/``members_removed`` per group). Assignments have
    no delta in Graph, so they are always complete.

    Users and groups may be partial (``ABSENT`` properties: unchanged, R14a). An on-demand
    read is evidence only of what it read whole: ``groups_read`` (each with its complete
    member list in ``members_added``) and ``users_read`` (each with its complete list of
    groups, ``groups_of``); other users in it came as members of those groups.
    """

    full: bool
    assignments: dict[str, PrincipalType]  # principal id -> type
    users: dict[str, EntraUser] = field(default_factory=dict)
    removed_users: set[str] = field(default_factory=set)
    groups: dict[str, EntraGroup] = field(default_factory=dict)
    removed_groups: set[str] = field(default_factory=set)
    # group id -> {member id: member type}
    members_added: dict[str, dict[str, MemberType]] = field(default_factory=dict)
    # group id -> {member id}
    members_removed: dict[str, set[str]] = field(default_factory=dict)
    # on demand: the users and groups read whole, and each such user's groups (direct)
    users_read: set[str] = field(default_factory=set)
    groups_read: set[str] = field(default_factory=set)
    groups_of: dict[str, set[str]] = field(default_factory=dict)
    # "users" / "groups" -> the @odata.deltaLink to resume from; None when not tracked
    delta_links: dict[str, str] = field(default_factory=dict)
    graph_requests: int = 0
    throttled: int = 0
    # a full read's users may be streamed into the store instead of ``users``
    # (store.buffer): how many rows wait there to be folded into the mirror
    users_buffered: int = 0
    # those users as the fold leaves them (id -> user), also held here when there were few
    # enough (store.buffer.HOLD_USERS); None otherwise
    buffered_held: dict[str, EntraUser] | None = None

    def __repr__(self) -> str:
        # short on purpose: libraries format a finished task's result into messages
        # (anyio's cancel reason), and the full dataclass repr of 100k users takes seconds
        return (
            f"GraphRead(full={self.full}, users={len(self.users)}, users_buffered={self.users_buffered}, groups={len(self.groups)}, "
            f"assignments={len(self.assignments)}, removed_users={len(self.removed_users)}, "
            f"removed_groups={len(self.removed_groups)})"
        )


@dataclass
class EntraView:
    """What Entra says, as the planner needs it: the resolved mirror of the tenant."""

    users: dict[str, EntraUser]
    groups: dict[str, EntraGroup]
    members: dict[str, dict[str, MemberType]]  # group id -> {member id: type} (direct)
    assignments: dict[str, PrincipalType]

    def within_reach(self, linked: Iterable[str]) -> EntraView:
        """Only the users assigned, in some group, or linked to a local user (``linked``):
        all a plan can touch unless scope is "all" (``Store.load_entra_view``)."""
        reach = set(self.assignments)
        reach.update(linked)
        for members in self.members.values():
            reach.update(members)
        users = {uid: u for uid, u in self.users.items() if uid in reach}
        return EntraView(users=users, groups=self.groups, members=self.members, assignments=self.assignments)


# --------------------------------------------------------------------------- local side

UserStatus = Literal["active", "deactivated"]


class LocalUser(NamedTuple):
    """A local user (a named tuple: the directory of a large tenant loads 10^5 of them)."""

    id: int
    entra_id: str | None
    user_name: str
    display_name: str | None
    email: str | None
    status: UserStatus
    managed: bool


@dataclass(frozen=True, slots=True)
class LocalGroup:
    id: int
    entra_id: str | None
    name: str
    managed: bool


@dataclass
class Directory:
    """What the local directory holds."""

    users: dict[int, LocalUser]
    groups: dict[int, LocalGroup]
    members: dict[int, set[int]]  # group id -> user ids
    enabled: bool = False
    invites: dict[int, str] = field(default_factory=dict)  # open invites: id -> email
    # when ``users`` holds only part of the directory (scoped or sliced plans): how many
    # active managed users the whole directory has, for the guards (R15)
    active_managed: int | None = None

    def count_active_managed(self) -> int:
        if self.active_managed is not None:
            return self.active_managed
        return sum(1 for u in self.users.values() if u.managed and u.status == "active")

    def admin_group(self) -> LocalGroup | None:
        for g in self.groups.values():
            if g.name == ADMIN_GROUP:
                return g
        return None


ADMIN_GROUP = "Administrators"

_NOTHING: Mapping[str, tuple[object, object]] = MappingProxyType({})

# --------------------------------------------------------------------------- changes

Action = Literal[
    "create", "update", "adopt", "deactivate", "reactivate", "delete",
    "add_member", "remove_member", "revoke", "skip",
]
ObjectType = Literal["user", "group", "membership", "invite"]
EntryStatus = Literal["success", "failure", "skipped", "staged"]


@dataclass(slots=True)
class Change:
    """One planned change. ``values`` holds the new local values the store must write.

    Users and groups that do not exist locally yet are referred to by their Entra id
    (``entra_id``); membership changes name the group and user by Entra id when they are
    managed, else by local id (``group_ref`` / ``user_ref``).
    """

    action: Action
    object_type: ObjectType
    entra_id: str | None
    name: str
    local_id: int | None = None
    reason: str = ""
    # read-only once planned; most changes have nothing in one or the other, and share one
    # empty mapping instead of two new dicts each (800k changes for 1M users: 100 MB)
    modified: Mapping[str, tuple[object, object]] = field(default_factory=lambda: _NOTHING)
    values: Mapping[str, object] = field(default_factory=lambda: _NOTHING)
    # membership changes: ("entra", id) or ("local", id), and the member's Entra id if any
    group_ref: tuple[str, str | int] | None = None
    user_ref: tuple[str, str | int] | None = None
    user_entra_id: str | None = None
    status: EntryStatus = "success"
    error: bool = False  # a "skip" that is an error (R5, R9, R10) makes the cycle partial
    failure: str | None = None  # why applying it failed (status "failure"): what failures.py keeps

    def modifications(self) -> Mapping[str, tuple[object, object]]:
        """What the change modifies, old -> new.

        A created user's ``modified`` is left empty by the planner: it is every value that
        is set, from nothing (not kept twice: 40 MB at 100k users).
        """
        if self.action == "create" and self.object_type == "user" and not self.modified:
            return {k: (None, v) for k, v in self.values.items() if v is not None}
        return self.modified


@dataclass
class Plan:
    changes: list[Change]
    errors: list[str] = field(default_factory=list)
