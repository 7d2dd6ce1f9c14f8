"""What one SCIM application should hold, and the operations that bring it there (R20-R24, R26).

Pure: no I/O, no clock. ``desired_state`` maps the local directory's **managed** objects to
what the application should hold (R20, R21); ``diff`` compares that with what the
application holds as far as syncd knows (``AppState``: the store's last pushed state, or, for
drift repair, the application's own listing) and returns the operations (R23):

- a user missing there is created (POST), never while deactivated (as R2);
- a user whose attributes differ gets one update replacing only what changed; ``active``
  false deactivates, true reactivates; a user is never deleted;
- a group missing there is created with its members; a linked group gets one update with
  its rename, ``externalId`` and member adds/removes (the executor splits big ones);
- a linked group the directory no longer has is deleted, except ``Administrators``, which is
  only forgotten (R23: never deleted in an application);
- deactivations held back: those the caller stages (R15's, ``hold``) and, over the
  application's own ``threshold``, all of them (R24); a held user keeps ``active`` and its
  memberships there;
- ``Administrators`` is never left without an active member (R12): the changes that would
  empty it are held back, with an error.

Objects are keyed by their **local** ids; the executor resolves application ids. A state that
equals the desired one gives no operation, so a cycle with no change sends no request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from ..model import ADMIN_GROUP, Directory

USER_ATTRS = ("user_name", "display_name", "email", "active", "external_id")
# the local property names report entries use for them (SPEC §4 ``modified``)
LOCAL_NAMES = {"user_name": "user_name", "display_name": "display_name", "email": "email", "active": "status",
               "external_id": "entra_id"}


class UserValues(NamedTuple):
    """A user as an application holds it (R21), in syncd's terms."""

    user_name: str
    display_name: str | None
    email: str | None
    active: bool
    external_id: str | None


class GroupValues(NamedTuple):
    display_name: str
    external_id: str | None
    members: frozenset[int]  # local user ids


@dataclass
class Desired:
    users: dict[int, UserValues]
    groups: dict[int, GroupValues]


class AppUser(NamedTuple):
    app_id: str
    values: UserValues


class AppGroup(NamedTuple):
    app_id: str
    display_name: str
    external_id: str | None
    members: frozenset[int]  # local user ids syncd knows to be members there
    created: bool = True  # syncd created it (False: linked an existing one)


@dataclass
class AppState:
    """What an application holds, as far as syncd knows: linked objects only."""

    users: dict[int, AppUser] = field(default_factory=dict)
    groups: dict[int, AppGroup] = field(default_factory=dict)


OpKind = Literal["create_user", "update_user", "create_group", "update_group", "delete_group", "forget_group"]


@dataclass(frozen=True)
class Op:
    """One operation on one object. ``action`` is the report's (SPEC §4)."""

    kind: OpKind
    local_id: int
    action: str
    user: UserValues | None = None  # users: the new values
    old_user: UserValues | None = None
    changed: tuple[str, ...] = ()  # USER_ATTRS that change, or "display_name"/"external_id" for groups
    group: GroupValues | None = None  # groups: the new values (members: those a create sends)
    old_group: AppGroup | None = None
    add: tuple[int, ...] = ()  # member changes (local user ids)
    remove: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        """Which object: failures back off per object."""
        return f"{'user' if self.kind.endswith('_user') else 'group'}:{self.local_id}"

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.user_name
        if self.group is not None:
            return self.group.display_name
        return self.old_group.display_name if self.old_group else str(self.local_id)


@dataclass(frozen=True)
class Held:
    """A change not sent: staged (R15/R24 thresholds) or held (R12), for the report."""

    kind: Literal["user", "membership"]
    local_id: int  # the user's
    name: str
    status: Literal["staged", "skipped"]
    reason: str
    group_id: int | None = None
    error: bool = False


@dataclass
class PushPlan:
    ops: list[Op] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    held_users: frozenset[int] = frozenset()  # users whose deactivation is held (for later rounds)
    admin_held: bool = False  # R12 held something back


def desired_state(directory: Directory) -> Desired:
    """R20/R21: the managed users and groups; a group's members are its active managed users."""
    users = {
        u.id: UserValues(u.user_name, u.display_name, u.email, u.status == "active", u.entra_id)
        for u in directory.users.values()
        if u.managed
    }
    groups = {}
    for g in directory.groups.values():
        if not g.managed:
            continue
        members = frozenset(uid for uid in directory.members.get(g.id, ()) if uid in users and users[uid].active)
        groups[g.id] = GroupValues(g.name, g.entra_id, members)
    return Desired(users, groups)


def diff(
    desired: Desired,
    state: AppState,
    *,
    threshold: int = 0,
    hold: Iterable[int] = (),
    approve: bool = False,
    app: str = "the application",
) -> PushPlan:
    """The operations that take ``state`` to ``desired`` (see the module docstring).

    ``threshold``: more deactivations than this are all staged (0: no limit); ``approve``
    lifts it. ``hold``: local user ids whose deactivation is held back whatever the count.
    """
    plan = PushPlan()
    want_users = dict(desired.users)
    hold = set(hold)

    # deactivations: active there, not wanted active here
    deactivating = [uid for uid, v in want_users.items() if (h := state.users.get(uid)) and h.values.active and not v.active]
    held_users = {uid for uid in deactivating if uid in hold}
    due = [uid for uid in deactivating if uid not in held_users]
    if threshold and not approve and len(due) > threshold:
        for uid in due:
            plan.held.append(Held("user", uid, want_users[uid].user_name, "staged",
                                  f"{len(due)} deactivations exceed {app}'s deactivation_threshold ({threshold}): staged"))
        held_users.update(due)
    for uid in sorted(held_users & hold):
        plan.held.append(Held("user", uid, want_users[uid].user_name, "staged", "deactivation staged in the local directory (R15)"))

    def held_groups(members: frozenset[int], before: frozenset[int]) -> frozenset[int]:
        # a held user stays active there and keeps the memberships it had
        return members | (before & held_users)

    # R12: Administrators there keeps an active member
    for gid, have in state.groups.items():
        if have.display_name != ADMIN_GROUP:
            continue
        want_g = desired.groups.get(gid)
        after = held_groups(want_g.members, have.members) if want_g else have.members

        def active_after(uid: int) -> bool:
            v = want_users.get(uid)
            return uid in held_users or (v.active if v else state.users[uid].values.active if uid in state.users else False)

        before_active = {u for u in have.members if u in state.users and state.users[u].values.active}
        if before_active and not any(active_after(u) for u in after):
            plan.admin_held = True
            plan.errors.append(
                f"{app}: held back changes that would leave {ADMIN_GROUP} there without an active member (R12)"
            )
            for uid in sorted(before_active):
                name = state.users[uid].values.user_name
                plan.held.append(Held("membership", uid, name, "skipped",
                                      f"held: would leave {ADMIN_GROUP} in {app} without an active member (R12)",
                                      group_id=gid, error=True))
            held_users.update(before_active)

    plan.held_users = frozenset(held_users)
    for uid in held_users:
        if uid in want_users:
            want_users[uid] = want_users[uid]._replace(active=True)

    # users
    for uid, want in want_users.items():
        have_u = state.users.get(uid)
        if have_u is None:
            if want.active:
                plan.ops.append(Op("create_user", uid, "create", user=want))
            continue
        changed = tuple(a for a, old, new in zip(USER_ATTRS, have_u.values, want, strict=True) if old != new)
        if changed:
            action = "update"
            if "active" in changed:
                action = "reactivate" if want.active else "deactivate"
            plan.ops.append(Op("update_user", uid, action, user=want, old_user=have_u.values, changed=changed))

    # groups
    will_exist = set(state.users) | {uid for uid, v in want_users.items() if v.active}
    deletes = []
    for gid, want_g in desired.groups.items():
        have_g = state.groups.get(gid)
        members = want_g.members
        if have_g is not None:
            members = held_groups(members, have_g.members)
        members = frozenset(m for m in members if m in will_exist)
        if have_g is None:
            plan.ops.append(Op("create_group", gid, "create", group=want_g._replace(members=members)))
            continue
        changed = tuple(
            a for a, old, new in (("display_name", have_g.display_name, want_g.display_name),
                                  ("external_id", have_g.external_id, want_g.external_id))
            if old != new
        )
        add = tuple(sorted(members - have_g.members))
        remove = tuple(sorted(have_g.members - members))
        if changed or add or remove:
            plan.ops.append(Op("update_group", gid, "update", group=want_g._replace(members=members), old_group=have_g,
                               changed=changed, add=add, remove=remove))
    for gid, have_g in state.groups.items():
        if gid in desired.groups:
            continue
        if have_g.display_name == ADMIN_GROUP:
            deletes.append(Op("forget_group", gid, "skip", old_group=have_g))  # R23: never deleted there
        else:
            deletes.append(Op("delete_group", gid, "delete", old_group=have_g))
    plan.ops.extend(deletes)
    return plan


def name_waves(ops: list[Op], state: AppState) -> list[list[Op]]:
    """The user operations in waves an application with unique userNames accepts.

    Names can go round locally in one cycle (R6a applies chains and swaps at once): in the
    application, a user takes a name another linked user holds only in a wave after the one
    in which that user lets go of it. When every waiting one waits on another (a swap), one
    of them is first parked under a name of its own (``parked_name``), in a wave of its own.
    Without such a clash this is one wave: the operations as they came.
    """
    pending = [op for op in ops if op.kind in ("create_user", "update_user")]
    name_of = {lid: au.values.user_name.casefold() for lid, au in state.users.items()}
    holder = {name: lid for lid, name in name_of.items()}
    waves: list[list[Op]] = []
    while pending:
        moving = {op.local_id for op in pending if op.kind == "update_user" and "user_name" in op.changed}
        ready = [op for op in pending if not _waits(op, holder, moving)]
        if not ready:
            first = pending[0]
            assert first.old_user is not None  # (only renames wait on each other, and only renames free a name)
            ready = [Op("update_user", first.local_id, "update", user=first.old_user._replace(user_name=parked_name(first)),
                        old_user=first.old_user, changed=("user_name",))]
        for op in ready:
            assert op.user is not None
            if op.local_id in name_of and holder.get(name_of[op.local_id]) == op.local_id:
                del holder[name_of[op.local_id]]
            name_of[op.local_id] = op.user.user_name.casefold()
            holder[name_of[op.local_id]] = op.local_id
        waves.append(ready)
        done = {id(op) for op in ready}
        pending = [op for op in pending if id(op) not in done]
    return waves


def _waits(op: Op, holder: dict[str, int], moving: set[int]) -> bool:
    """Whether ``op``'s user takes a name another user still to be renamed holds."""
    assert op.user is not None
    h = holder.get(op.user.user_name.casefold())
    return h is not None and h != op.local_id and h in moving


def is_park(op: Op) -> bool:
    """Whether ``op`` parks its user for a swap (``name_waves``)."""
    return op.kind == "update_user" and op.user is not None and op.old_user is not None and op.user.user_name == parked_name(op)


def parked_name(op: Op) -> str:
    """A userName no one else holds, for a user whose name goes round (``name_waves``)."""
    assert op.old_user is not None
    return f"syncd-parked-{op.local_id}-{op.old_user.user_name}"
