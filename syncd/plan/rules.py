"""The planner: SPEC §1 rules R1-R13 as pure functions.

``plan(entra, directory, settings)`` turns what Entra says (EntraView) and what the local
directory holds (Directory) into the list of changes that makes the directory match. No I/O,
no clock, no globals: the same inputs always give the same plan. Each rule lives in a
function named after it so it is easy to find; guards (R12, R15) are in ``guards.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

from ..model import (
    ADMIN_GROUP,
    Change,
    Directory,
    EntraGroup,
    EntraUser,
    EntraView,
    LocalGroup,
    LocalUser,
    Plan,
)
from .settings import PlanSettings

# --------------------------------------------------------------------------- R1 scope


@dataclass(frozen=True)
class Scope:
    """Who and what is in scope, and why (``explain`` shows the reasons)."""

    users: dict[str, str]  # entra user id -> why it is in scope
    groups: set[str]  # entra group ids in scope
    # group id -> in-scope user members (direct, or transitive in that mode)
    group_users: dict[str, set[str]]


def r1_scope(entra: EntraView, settings: PlanSettings) -> Scope:
    """R1: who is in scope: assigned users + user members of assigned groups, or everyone."""
    if settings.scope == "all":
        groups = {gid for gid, g in entra.groups.items() if g.security_enabled}
        users = {uid: "scope is all users" for uid in entra.users}
    else:
        groups = {pid for pid, kind in entra.assignments.items() if kind == "Group" and pid in entra.groups}
        users = {
            pid: "assigned to the application directly"
            for pid, kind in entra.assignments.items()
            if kind == "User" and pid in entra.users
        }
    transitive = settings.group_members == "transitive"
    group_users: dict[str, set[str]] = {}
    for gid in sorted(groups):
        members = _user_members(entra, gid, transitive)
        group_users[gid] = members
        if settings.scope != "all":
            why = f"member of assigned group {entra.groups[gid].display_name or gid!r}"  # one string per group
            for uid in sorted(members):
                users.setdefault(uid, why)
    return Scope(users=users, groups=groups, group_users=group_users)


def _user_members(entra: EntraView, gid: str, transitive: bool) -> set[str]:
    """User members of a group: direct only (Entra's rule) or through nested groups too."""
    found: set[str] = set()
    seen = {gid}
    todo = [gid]
    while todo:
        for mid, kind in entra.members.get(todo.pop(), {}).items():
            if kind == "user" and mid in entra.users:
                found.add(mid)
            elif kind == "group" and transitive and mid not in seen:
                seen.add(mid)  # nesting can loop in Entra: visit each group once
                todo.append(mid)
    return found


# --------------------------------------------------------------------------- R5 attributes


def guest_upn(upn: str) -> str:
    """B2B guests: ``alias_theirdomain.com#EXT#@tenant.onmicrosoft.com`` -> ``alias@theirdomain.com``."""
    head, sep, _ = upn.partition("#EXT#")
    if not sep or "_" not in head:
        return upn
    alias, _, domain = head.rpartition("_")
    return f"{alias}@{domain}"


class MappedUser(NamedTuple):  # one per user in scope: 10^5-10^6 in a full plan
    user_name: str
    display_name: str | None
    email: str


def r5_map_attributes(user: EntraUser, settings: PlanSettings) -> MappedUser | str:
    """R5: local attributes from Entra; returns an error text when the mapped one is missing."""
    upn = (user.user_principal_name or "").strip()
    if not upn:
        return f"user {user.id} has no userPrincipalName: skipped"
    user_name = guest_upn(upn)
    if settings.email == "mail":
        email = (user.mail or "").strip()
        if not email:
            return f"user {upn} ({user.id}) has no value for the mapped attribute mail: skipped"
    elif settings.email == "originalUserPrincipalName":
        email = upn
    else:
        email = user_name  # the default email follows the same guest rule as user_name
    return MappedUser(user_name, user.display_name, email)


# --------------------------------------------------------------------------- R8 names


def names_claimed(user: EntraUser, settings: PlanSettings) -> set[str]:
    """What a plan unit holding ``user`` must hold as well, for R6 (an unmanaged user with its
    email or user_name) and R6a (any local user holding its user_name): the local users
    these names (casefolded) find. Unmanaged users and Administrators' members (R12) are in
    every unit; the Entra side of every local user given is too."""
    mapped = r5_map_attributes(user, settings)
    return set() if isinstance(mapped, str) else {mapped.user_name.casefold(), mapped.email.casefold()}


def local_group_name(group: EntraGroup, settings: PlanSettings) -> str | None:
    """R8: the admin aliases (and ``Administrators``) map to the reserved local group."""
    name = (group.display_name or "").strip()
    if not name:
        return None
    aliases = {a.casefold() for a in settings.admin_group_aliases} | {ADMIN_GROUP.casefold()}
    return ADMIN_GROUP if name.casefold() in aliases else name


# --------------------------------------------------------------------------- the plan


class _Planner:
    def __init__(self, entra: EntraView, directory: Directory, settings: PlanSettings):
        self.entra = entra
        self.dir = directory
        self.settings = settings
        self.changes: list[Change] = []
        self.errors: list[str] = []
        self.by_entra_user: dict[str, LocalUser] = {u.entra_id: u for u in directory.users.values() if u.entra_id}
        self.by_entra_group: dict[str, LocalGroup] = {g.entra_id: g for g in directory.groups.values() if g.entra_id}
        # entra user id -> the state it will have: "active" users get group memberships
        self.final_active: set[str] = set()
        self.deactivating: set[int] = set()  # local ids leaving their groups by deactivation
        # every local user linked to an Entra one once this plan is applied (adoptions included)
        self.local_by_entra: dict[str, LocalUser] = dict(self.by_entra_user)
        self.entra_of_local: dict[int, str] = {u.id: eid for eid, u in self.by_entra_user.items()}
        self.untouched: set[int] = set()  # local ids of users skipped by R5: memberships kept as they are
        # R5's user_name of each user mapped so far (every user that can end up active):
        # memberships name their users by it
        self.user_names: dict[str, str] = {}

    # ---- users: R2-R6a
    def users(self, scope: Scope) -> None:
        # linked users first, then adoptions (R6), then creations; R6a then judges every
        # user_name the plan gives against the names the directory will hold
        unlinked: list[tuple[EntraUser, MappedUser]] = []
        for uid in sorted(scope.users):
            found = self.user_in_scope(self.entra.users[uid])
            if found is not None:
                unlinked.append(found)
        unmanaged = _unmanaged_index(self.dir.users.values())
        adopted: set[int] = set()
        for user, mapped in unlinked:
            # R6: adopt an unmanaged local user with the same user_name or email, at most once
            candidates = unmanaged.get(mapped.email.casefold()) if unmanaged else None
            adoptee = next((u for u in candidates if u.id not in adopted), None) if candidates else None
            if adoptee is None:
                self.changes.append(
                    Change(
                        "create", "user", user.id, mapped.user_name,
                        reason="in scope and enabled in Entra ID, no matching local user",
                        values=_user_values(mapped, "active"),  # `modified`: every value (Change.modifications)
                    )
                )
                self.final_active.add(user.id)
                continue
            adopted.add(adoptee.id)
            self.r6_adopt(adoptee, user, mapped)
        # R3: managed users that left scope or were deleted in Entra
        for local in sorted(self.by_entra_user.values(), key=lambda u: u.id):
            if local.entra_id in scope.users or local.status != "active":
                continue
            entra_user = self.entra.users.get(local.entra_id or "")
            if entra_user is None:
                self.deactivate(local, "deleted in Entra ID (or soft-deleted)")
            elif entra_user.account_enabled is False:
                self.deactivate(local, "disabled in Entra ID (accountEnabled is false)")
            elif not self.settings.skip_out_of_scope_deactivations:
                self.deactivate(local, "left scope: no longer assigned to the application, directly or through a group")
        self.r6a_unique_user_names()

    def r6a_unique_user_names(self) -> None:
        """R6a: no two local users share a user_name (ignoring case), whatever their status.

        A change that gives a user a name another one holds once the plan applies is not
        applied: an error entry names both, and the next cycle plans it again. Who holds a
        name: a user keeping its own; else the first claimant (local users by id, then new
        ones by Entra id). Refusing a rename keeps the user's old name, which may refuse
        another claim in turn; swaps and chains that leave every name with one holder apply.
        """
        users = self.dir.users
        final: dict[int | str, str] = {lid: u.user_name for lid, u in users.items()}  # local id, or Entra id of a new user
        claims: dict[int | str, Change] = {}
        for c in self.changes:
            if c.object_type != "user" or "user_name" not in c.values:
                continue
            name = str(c.values["user_name"])
            if c.local_id is None:
                claims[c.entra_id or ""] = c
                final[c.entra_id or ""] = name
            elif name.casefold() != users[c.local_id].user_name.casefold():
                claims[c.local_id] = c
                final[c.local_id] = name
        if not claims:
            return
        refused: dict[int | str, int | str] = {}  # claimant -> who holds the name
        while True:
            holders: dict[str, list[int | str]] = {}
            for key, name in final.items():
                holders.setdefault(name.casefold(), []).append(key)
            changed = False
            for keys in holders.values():
                claimants = sorted((k for k in keys if k in claims and k not in refused), key=_claim_order)
                if len(keys) < 2 or not claimants:
                    continue
                keepers = sorted((k for k in keys if k not in claims or k in refused), key=_claim_order)
                winner = keepers[0] if keepers else claimants[0]
                for key in claimants:
                    if key == winner:
                        continue
                    refused[key] = winner
                    if isinstance(key, int):
                        final[key] = users[key].user_name
                    else:
                        del final[key]
                    changed = True
            if not changed:
                break
        for key, holder in refused.items():
            self._refuse_name(claims[key], self._who(holder, claims))

    def _who(self, key: int | str, claims: dict[int | str, Change]) -> str:
        if isinstance(key, str):
            return f"{claims[key].values['user_name']} (Entra user {key}, created in this cycle)"
        u = self.dir.users[key]
        kind = f"managed by Entra user {u.entra_id}" if u.managed else "unmanaged"
        status = "deactivated" if u.id in self.deactivating else u.status  # as the plan leaves it
        return f"{u.user_name} (local user {u.id}, {kind}, {status})"

    def _refuse_name(self, c: Change, holder: str) -> None:
        """R6a: the change that would give a held user_name is not applied. A deactivation or
        reactivation still is, under the user's old name: access follows Entra's word."""
        name = str(c.values["user_name"])
        local = self.dir.users.get(c.local_id) if c.local_id is not None else None
        what = {"create": "created", "adopt": "adopted"}.get(c.action, "renamed")
        message = (
            f"user {c.entra_id} cannot be {what} as {name}: that user_name is held by {holder} "
            "(user_names are unique, ignoring case); tried again every cycle until the name is free"
        )
        self.errors.append(message)
        index = next(i for i, x in enumerate(self.changes) if x is c)
        skip = Change("skip", "user", c.entra_id, name, local_id=c.local_id, reason=message, status="skipped", error=True)
        if c.action in ("deactivate", "reactivate") and local is not None:
            values = {**c.values, "user_name": local.user_name}
            current = {"user_name": local.user_name, "display_name": local.display_name, "email": local.email, "status": local.status}
            self.changes[index] = replace(c, values=values, modified=_diff(current, values))
            self.changes.append(skip)
            return
        self.changes[index] = skip
        if c.action in ("create", "adopt"):
            self.final_active.discard(c.entra_id or "")
        if c.action == "adopt" and local is not None:
            self.local_by_entra.pop(c.entra_id or "", None)
            self.entra_of_local.pop(local.id, None)
        elif local is not None and c.entra_id:
            self.user_names[c.entra_id] = local.user_name  # (memberships name the user as it stays)

    def user_in_scope(self, user: EntraUser) -> tuple[EntraUser, MappedUser] | None:
        """Plan an in-scope user linked to a local one; return an unlinked enabled one for R6.

        ``account_enabled`` None (Graph has never said) neither enables nor disables: such
        a user is not created or reactivated, and not deactivated for it (R14a)."""
        mapped = r5_map_attributes(user, self.settings)
        local = self.by_entra_user.get(user.id)
        name = user.user_principal_name or user.id
        enabled = user.account_enabled
        if isinstance(mapped, str):
            if enabled is False:
                # R2 before R5: a disabled user is deactivated (or never created) whatever
                # its attributes say; its missing attribute needs no error of its own
                if local is not None and local.status == "active":
                    self.deactivate(local, "disabled in Entra ID (accountEnabled is false)")
                return None
            self.skip_error("user", user.id, name, mapped)
            if local is not None and local.status == "active":
                self.untouched.add(local.id)  # R5 "skipped": left as it is, its groups too
            return None
        self.user_names[user.id] = mapped.user_name
        if local is None:
            if enabled is None:
                self.skip_error("user", user.id, mapped.user_name, _UNKNOWN_ENABLED.format(name=mapped.user_name, what="created"))
            if enabled is not True:
                return None  # R2: a disabled user is never created (nor adopted)
            return user, mapped
        if (
            enabled is not False
            and local.status == "active"
            and local.user_name == mapped.user_name
            and local.display_name == mapped.display_name
            and local.email == mapped.email
        ):
            self.final_active.add(user.id)  # unchanged: the common case, kept cheap
            return None
        current = {"user_name": local.user_name, "display_name": local.display_name, "email": local.email, "status": local.status}
        if enabled is False:
            if local.status == "active":
                self.deactivate(local, "disabled in Entra ID (accountEnabled is false)", mapped)
            else:
                self.update_user(local, mapped, "deactivated", current)
            return None
        if local.status == "deactivated":
            if enabled is None:
                self.skip_error("user", user.id, mapped.user_name, _UNKNOWN_ENABLED.format(name=mapped.user_name, what="reactivated"))
                self.update_user(local, mapped, "deactivated", current)
                return None
            # R4: the same local record comes back
            self.final_active.add(user.id)
            target = _user_values(mapped, "active")
            self.changes.append(
                Change(
                    "reactivate", "user", user.id, mapped.user_name, local_id=local.id,
                    reason="back in scope and enabled in Entra ID",
                    modified=_diff(current, target), values=target,
                )
            )
        else:
            self.final_active.add(user.id)
            self.update_user(local, mapped, "active", current)
        return None

    def update_user(self, local: LocalUser, mapped: MappedUser, status: str, current: dict) -> None:
        target = _user_values(mapped, status)
        modified = _diff(current, target)
        if modified:
            self.changes.append(
                Change(
                    "update", "user", local.entra_id, mapped.user_name, local_id=local.id,
                    reason="attributes changed in Entra ID", modified=modified, values=target,
                )
            )

    def r6_adopt(self, local: LocalUser, user: EntraUser, mapped: MappedUser) -> None:
        self.local_by_entra[user.id] = local
        self.entra_of_local[local.id] = user.id
        current = {"user_name": local.user_name, "display_name": local.display_name, "email": local.email, "status": local.status}
        target = _user_values(mapped, "active")
        self.changes.append(
            Change(
                "adopt", "user", user.id, mapped.user_name, local_id=local.id,
                reason=f"unmanaged local user {local.user_name} matches {mapped.email}: now managed by Entra ID",
                modified=_diff(current, target), values=target,
            )
        )
        self.final_active.add(user.id)

    def deactivate(self, local: LocalUser, reason: str, mapped: MappedUser | None = None) -> None:
        current = {"user_name": local.user_name, "display_name": local.display_name, "email": local.email, "status": local.status}
        target: dict[str, object] = _user_values(mapped, "deactivated") if mapped else {**current, "status": "deactivated"}
        self.deactivating.add(local.id)
        self.changes.append(
            Change(
                "deactivate", "user", local.entra_id, local.user_name, local_id=local.id,
                reason=reason, modified=_diff(current, target), values=target,
            )
        )

    # ---- groups: R7-R10
    def groups(self, scope: Scope) -> dict[str, tuple[str, LocalGroup | None]]:
        """Plan group creates/adoptions/renames/deletes; return the groups whose members to sync."""
        wanted: dict[str, list[tuple[str, str]]] = {}  # casefolded local name -> [(entra id, local name)]
        for gid in sorted(scope.groups):
            group = self.entra.groups[gid]
            name = local_group_name(group, self.settings)
            if name is None:
                self.skip_error("group", gid, gid, f"group {gid} has no displayName: not provisioned")
                continue
            if name != ADMIN_GROUP and len(name) > self.settings.max_group_name_length:
                self.skip_error(
                    "group", gid, name,
                    f"group {name!r} is {len(name)} characters long, over the limit of "
                    f"{self.settings.max_group_name_length} (mapping.max_group_name_length): not provisioned; "
                    "its members are still provisioned as users",
                )
                continue
            wanted.setdefault(name.casefold(), []).append((gid, name))

        provisioned: dict[str, tuple[str, LocalGroup | None]] = {}
        conflicted: set[str] = set()
        for entries in wanted.values():
            if len(entries) > 1:
                ids = ", ".join(gid for gid, _ in entries)
                names = " and ".join(repr(self.entra.groups[gid].display_name) for gid, _ in entries)
                for gid, name in entries:
                    conflicted.add(gid)
                    self.skip_error(
                        "group", gid, name,
                        f"conflict: groups {names} ({ids}) all map to the local group {name!r}: "
                        "none is provisioned until one is renamed or unassigned (R10)",
                    )
                continue
            gid, name = entries[0]
            local = self.by_entra_group.get(gid)
            if local is not None and local.name == ADMIN_GROUP and name != ADMIN_GROUP:
                # R8: its Entra group no longer has an admin name (renamed, or the aliases
                # changed): Administrators is released below, and the group is an ordinary one
                local = None
            provisioned[gid] = (name, local)

        # R11: managed groups that left scope (or were deleted) go; Administrators only stops being managed
        staying: dict[int, LocalGroup] = dict(self.dir.groups)
        for local in sorted(self.by_entra_group.values(), key=lambda g: g.id):
            linked = provisioned.get(local.entra_id or "")
            renamed = local.name == ADMIN_GROUP and linked is not None and linked[1] is None
            if local.entra_id in scope.groups and not renamed:
                continue
            gone = local.entra_id not in self.entra.groups
            if renamed and linked is not None:
                why = f"renamed {linked[0]!r}, which does not map to {ADMIN_GROUP}"
            else:
                why = "deleted in Entra ID" if gone else "no longer assigned to the application"
            if local.name == ADMIN_GROUP:
                self.changes.append(
                    Change(
                        "update", "group", local.entra_id, local.name, local_id=local.id,
                        reason=f"its Entra group was {why}: {ADMIN_GROUP} is kept with its members, no longer managed",
                        modified={"managed": (True, False)}, values={"managed": False, "entra_id": None},
                    )
                )
                staying[local.id] = LocalGroup(local.id, None, local.name, False)
            else:
                del staying[local.id]
                self.changes.append(
                    Change("delete", "group", local.entra_id, local.name, local_id=local.id, reason=f"{why}: removed locally")
                )

        # renames (R11) are checked against the names the groups will have after this plan, so
        # two renames that swap a name free/take it whatever their order; a rename onto a name
        # another group keeps is refused (and so keeps its old name, which may refuse another)
        renames = {
            local.id: (gid, name)
            for gid, (name, local) in provisioned.items()
            if local is not None and local.id in staying and local.name != name and local.name != ADMIN_GROUP
        }
        refused: dict[int, LocalGroup] = {}
        while True:
            final: dict[str, list[int]] = {}
            for lid, g in staying.items():
                new_name = renames[lid][1] if lid in renames and lid not in refused else g.name
                final.setdefault(new_name.casefold(), []).append(lid)
            clash = [
                (lid, holders)
                for holders in final.values()
                if len(holders) > 1
                for lid in holders
                if lid in renames and lid not in refused
            ]
            if not clash:
                break
            for lid, holders in clash:
                refused[lid] = staying[min(i for i in holders if i != lid)]
        names_in_use = {name: staying[ids[0]] for name, ids in final.items()}

        result: dict[str, tuple[str, LocalGroup | None]] = {}
        for gid, (name, linked_group) in sorted(provisioned.items()):
            if (local := linked_group) is not None:
                if local.id in refused:
                    keeper = refused[local.id]
                    self.skip_error("group", gid, name, f"cannot rename {local.name!r} to {name!r}: local group {keeper.id} has that name")
                elif local.id in renames:
                    self.rename_group(gid, local, name, "renamed in Entra ID")
                result[gid] = (name, local)
                continue
            holder = names_in_use.get(name.casefold())
            if holder is not None:
                if holder.managed and holder.entra_id != gid:
                    self.skip_error("group", gid, name, f"local group {holder.name!r} is already managed by Entra group {holder.entra_id}: not provisioned")
                    continue
                self.changes.append(
                    Change(
                        "adopt", "group", gid, holder.name, local_id=holder.id,
                        reason=f"unmanaged local group {holder.name!r} has the same name: now managed by Entra ID",
                        values={"managed": True},
                    )
                )
                names_in_use[name.casefold()] = LocalGroup(holder.id, gid, holder.name, True)
                if holder.name != name and holder.name != ADMIN_GROUP:
                    # the name differs only in case: it takes Entra's, as a rename would
                    self.rename_group(gid, holder, name, "adopted: takes its name from Entra ID")
                result[gid] = (name, holder)
            else:
                names_in_use[name.casefold()] = LocalGroup(-1, gid, name, True)
                self.changes.append(
                    Change("create", "group", gid, name, reason="assigned to the application", modified={"name": (None, name)}, values={"name": name})
                )
                result[gid] = (name, None)
        return result

    def rename_group(self, gid: str, local: LocalGroup, name: str, reason: str) -> None:
        self.changes.append(
            Change(
                "update", "group", gid, name, local_id=local.id, reason=reason,
                modified={"name": (local.name, name)}, values={"name": name},
            )
        )

    # ---- memberships: R11
    def memberships(self, scope: Scope, groups: dict[str, tuple[str, LocalGroup | None]]) -> None:
        users_by_id = self.dir.users
        user_names = self.user_names
        for gid, (name, local) in sorted(groups.items()):
            wanted = {uid for uid in scope.group_users.get(gid, ()) if uid in self.final_active}
            current: set[int] = set(self.dir.members.get(local.id, ())) if local else set()
            group_ref = _gref(gid, local)
            for uid in sorted(wanted):
                lu = self.local_by_entra.get(uid)
                if lu is not None and lu.id in current:
                    continue
                user_name = user_names[uid]
                self.changes.append(
                    Change(
                        "add_member", "membership", gid, f"{name} / {user_name}",
                        reason="member in Entra ID", group_ref=group_ref, user_ref=_uref(uid, lu),
                        user_entra_id=uid,
                    )
                )
            for lid in sorted(current):
                if lid in self.deactivating:
                    continue  # the deactivation takes the user out of its groups
                if lid in self.untouched:
                    continue  # R5: a skipped user keeps its memberships until it can be mapped again
                lu = users_by_id.get(lid)
                eid = self.entra_of_local.get(lid)
                if lu is None or eid in wanted:
                    continue
                if lu.status != "active" and eid not in self.final_active:
                    why = "deactivated users leave their groups"
                elif eid is None:
                    why = "not a member in Entra ID (unmanaged local user)"
                else:
                    why = "no longer a member in Entra ID"
                self.changes.append(
                    Change(
                        "remove_member", "membership", gid, f"{name} / {lu.user_name}", reason=why,
                        group_ref=group_ref, user_ref=("local", lid),
                        user_entra_id=eid,
                    )
                )

    # ---- invites: R13
    def r13_revoke_invites(self) -> None:
        if self.dir.enabled:
            return
        for iid, email in sorted(self.dir.invites.items()):
            self.changes.append(
                Change("revoke", "invite", None, email, local_id=iid, reason="sync with Entra ID is enabled: open invites are revoked")
            )

    def skip_error(self, object_type: str, entra_id: str, name: str, message: str) -> None:
        self.errors.append(message)
        self.changes.append(Change("skip", object_type, entra_id, name, reason=message, status="skipped", error=True))  # type: ignore[arg-type]


_UNKNOWN_ENABLED = (
    "user {name}: Entra ID has not said whether the account is enabled (accountEnabled was never "
    "sent): not {what} until it does"
)


def _claim_order(key: int | str) -> tuple[bool, int, str]:
    """R6a's order among claimants of one name: local users by id, then new ones by Entra id."""
    return (True, 0, key) if isinstance(key, str) else (False, key, "")


def _unmanaged_index(users: Iterable[LocalUser]) -> dict[str, list[LocalUser]]:
    """R6 candidates per casefolded name: user_name matches before email matches, oldest first.

    Every candidate is kept, so when one is adopted the next in line is still found (with only
    the first, a second Entra user could need a second cycle to adopt its own match).
    """
    ranked: dict[str, list[tuple[int, int, LocalUser]]] = {}
    for u in users:
        if u.entra_id is None:
            for rank, key in enumerate((u.user_name, u.email)):
                if key:
                    ranked.setdefault(key.casefold(), []).append((rank, u.id, u))
    return {key: [u for _, _, u in sorted(found, key=lambda t: t[:2])] for key, found in ranked.items()}


def _user_values(mapped: MappedUser, status: str) -> dict[str, object]:
    return {"user_name": mapped.user_name, "display_name": mapped.display_name, "email": mapped.email, "status": status}


def _diff(current: dict, target: dict) -> dict[str, tuple[object, object]]:
    return {k: (current.get(k), v) for k, v in target.items() if current.get(k) != v}


def _gref(gid: str, local: LocalGroup | None) -> tuple[str, str | int]:
    return ("local", local.id) if local is not None else ("entra", gid)


def _uref(uid: str, local: LocalUser | None) -> tuple[str, str | int]:
    return ("local", local.id) if local is not None else ("entra", uid)


_ORDER = {
    ("group", "delete"): -1,  # first, so a new group may take a freed name
    ("group", "create"): 0, ("group", "adopt"): 0, ("group", "update"): 1,
    ("user", "create"): 2, ("user", "adopt"): 2, ("user", "reactivate"): 2, ("user", "update"): 3,
    ("membership", "add_member"): 4, ("membership", "remove_member"): 5,
    ("user", "deactivate"): 6, ("invite", "revoke"): 8,
}


def _rank(c: Change) -> int:
    if c.object_type == "group" and c.action == "update" and c.values.get("managed") is False:
        return -1  # R8: Administrators is released before another Entra group adopts it
    return _ORDER.get((c.object_type, c.action), 9)


def plan(entra: EntraView, directory: Directory, settings: PlanSettings) -> Plan:
    """The whole plan, in the order the store applies it.

    A plan over part of the tenant (a *unit*: the users a delta touched, or a slice of a
    large tenant, ``syncd/units.py``) is the whole plan's for its own users when the two
    views also hold what the rules that look at other objects read:
    - every group of both sides, the units' users' memberships and every nesting of
      groups (R1 scope, R7-R10 compare groups with each other; transitive members);
    - every local user holding a name one of its users claims (``names_claimed``) and
      every unlinked local user (R6 matching, R6a unique names);
    - the Entra side of every linked local user it holds (R3, R4);
    - the members of Administrators (R12, judged by the guards).
    """
    planner = _Planner(entra, directory, settings)
    scope = r1_scope(entra, settings)
    planner.users(scope)
    groups = planner.groups(scope)
    planner.memberships(scope, groups)
    planner.r13_revoke_invites()
    return Plan(changes=sorted(planner.changes, key=_rank), errors=planner.errors)


def restrict(p: Plan, *, users_read: set[str], groups_read: set[str], members: dict[str, bool | None]) -> Plan:
    """Provision on demand: only the changes the on-demand read is evidence for (R14a).

    ``users_read``: users read whole, with every group they are in: all their changes.
    ``groups_read``: groups read whole, with every member: their changes and memberships.
    ``members``: the other users the read carries (members of those groups) and whether
    they are enabled: their creates, updates and reactivations, and a deactivation only
    when Entra says they are disabled (whether they left scope elsewhere, this read does
    not tell). A group a kept membership needs is created (or adopted) with it. Invite
    revocations stay: an on-demand cycle enables sync too (R13), and no later cycle would
    revoke the invites left open.
    """
    def wanted(c: Change) -> bool:
        if c.object_type == "user":
            if c.entra_id in users_read:
                return True
            return c.entra_id in members and (c.action != "deactivate" or members[c.entra_id] is False)
        if c.object_type == "group":
            return c.entra_id in groups_read
        if c.object_type == "membership":
            return c.entra_id in groups_read or c.user_entra_id in users_read
        return c.object_type == "invite"

    kept = [c for c in p.changes if wanted(c)]
    needed = {c.group_ref[1] for c in kept if c.action == "add_member" and c.group_ref and c.group_ref[0] == "entra"}
    if needed:
        kept_ids = {id(c) for c in kept}
        kept = [
            c for c in p.changes
            if id(c) in kept_ids or (c.object_type == "group" and c.action in ("create", "adopt") and c.entra_id in needed)
        ]
    errors = [c.reason for c in kept if c.error]
    return Plan(changes=kept, errors=errors)
