"""A read from Graph as plain data: the pages a source hands over, and how they fold into
one ``GraphRead``. Shared by the source (which makes pages) and the store (which stages
them), so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from .model import (
    EntraGroup,
    EntraUser,
    GraphRead,
    MemberType,
    PrincipalType,
    overlay_group,
    overlay_user,
)

PageKind = Literal["users", "groups", "assignments", "reset"]


@dataclass
class GraphPage:
    """One parsed page, in model terms. ``on_page`` receives these.

    ``kind == "reset"`` means: a stored delta link expired mid-read; forget every page
    received so far in this read, a full read follows.
    """

    kind: PageKind
    users: list[EntraUser] = field(default_factory=list)
    removed_users: list[str] = field(default_factory=list)
    groups: list[EntraGroup] = field(default_factory=list)
    removed_groups: list[str] = field(default_factory=list)
    # group id -> {member id: type}, and group id -> removed member ids, in page order
    members_added: dict[str, dict[str, MemberType]] = field(default_factory=dict)
    members_removed: dict[str, set[str]] = field(default_factory=dict)
    # groups seen on this page, also those carrying only members (big groups span pages)
    group_ids: list[str] = field(default_factory=list)
    assignments: dict[str, PrincipalType] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.users) + len(self.removed_users) + len(self.group_ids) + len(self.assignments)


# where a streaming read hands each page (the cycle's BufferedRead.add, or a coroutine)
OnPage = Callable[[GraphPage], Awaitable[None] | None]


class ReadAccumulator:
    """Folds pages into one GraphRead: an object that comes again is laid over its earlier
    occurrence (a partial one changes only what it carries), a removal drops it."""

    def __init__(self, full: bool) -> None:
        self.read = GraphRead(full=full, assignments={})

    def add(self, page: GraphPage) -> None:
        read = self.read
        for user in page.users:
            read.users[user.id] = overlay_user(read.users.get(user.id), user) if user.partial else user
            read.removed_users.discard(user.id)
        for uid in page.removed_users:
            read.users.pop(uid, None)
            read.removed_users.add(uid)
        for gid in page.group_ids:
            read.removed_groups.discard(gid)
            if read.full:
                read.members_added.setdefault(gid, {})
        for group in page.groups:
            read.groups[group.id] = overlay_group(read.groups.get(group.id), group)
        for gid in page.removed_groups:
            read.groups.pop(gid, None)
            read.members_added.pop(gid, None)
            read.members_removed.pop(gid, None)
            read.removed_groups.add(gid)
        for gid, added in page.members_added.items():
            target = read.members_added.setdefault(gid, {})
            gone = read.members_removed.get(gid)
            for mid, mtype in added.items():
                target[mid] = mtype
                if gone:
                    gone.discard(mid)
        for gid, removed in page.members_removed.items():
            if not removed:
                continue
            target_removed = read.members_removed.setdefault(gid, set())
            added_so_far = read.members_added.get(gid, {})
            for mid in removed:
                added_so_far.pop(mid, None)
                target_removed.add(mid)
        read.assignments.update(page.assignments)

    def finish(self) -> GraphRead:
        read = self.read
        # drop empty per-group entries an incremental read does not need
        if not read.full:
            read.members_added = {g: m for g, m in read.members_added.items() if m}
        read.members_removed = {g: m for g, m in read.members_removed.items() if m}
        return read
