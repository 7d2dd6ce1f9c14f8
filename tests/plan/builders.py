"""Small builders that make EntraView / Directory fixtures readable in planner tests.

    entra = (Tenant()
             .user("u1", "alice@contoso.com")
             .group("g1", "Sales", members=["u1"])
             .assign("g1"))
    local = Local().user(1, "alice@contoso.com", entra="u1").admins(members=[1])
"""

from __future__ import annotations

from syncd.model import (
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
from syncd.plan.rules import plan
from syncd.plan.settings import PlanSettings

ADMIN_ID = 1  # the local id the store gives Administrators


class Tenant:
    """Builds an EntraView."""

    def __init__(self) -> None:
        self.view = EntraView(users={}, groups={}, members={}, assignments={})

    def user(
        self,
        uid: str,
        upn: str | None,
        *,
        name: str | None = None,
        mail: str | None = None,
        enabled: bool = True,
        guest: bool = False,
        assigned: bool = False,
    ) -> Tenant:
        self.view.users[uid] = EntraUser(
            id=uid,
            user_principal_name=upn,
            display_name=name if name is not None else (upn or uid).split("@")[0],
            mail=mail,
            account_enabled=enabled,
            user_type="Guest" if guest else "Member",
        )
        if assigned:
            self.assign(uid)
        return self

    def group(
        self,
        gid: str,
        name: str | None,
        *,
        members: list[str] = (),  # type: ignore[assignment]
        groups: list[str] = (),  # type: ignore[assignment]
        security: bool = True,
        assigned: bool = False,
    ) -> Tenant:
        self.view.groups[gid] = EntraGroup(id=gid, display_name=name, security_enabled=security)
        m = self.view.members.setdefault(gid, {})
        for uid in members:
            m[uid] = "user"
        for sub in groups:
            m[sub] = "group"
        if assigned:
            self.assign(gid)
        return self

    def member(self, gid: str, mid: str, kind: str = "user") -> Tenant:
        self.view.members.setdefault(gid, {})[mid] = kind  # type: ignore[assignment]
        return self

    def assign(self, *pids: str) -> Tenant:
        for pid in pids:
            if pid in self.view.groups:
                self.view.assignments[pid] = "Group"
            else:
                self.view.assignments[pid] = "User"
        return self

    def unassign(self, *pids: str) -> Tenant:
        for pid in pids:
            self.view.assignments.pop(pid, None)
        return self

    def delete_user(self, uid: str) -> Tenant:
        self.view.users.pop(uid, None)
        self.view.assignments.pop(uid, None)
        for m in self.view.members.values():
            m.pop(uid, None)
        return self

    def disable(self, uid: str) -> Tenant:
        self.view.users[uid] = self.view.users[uid]._replace(account_enabled=False)
        return self

    def build(self) -> EntraView:
        return self.view


class Local:
    """Builds a Directory. It starts as the store does: an empty, unmanaged Administrators."""

    def __init__(self, *, enabled: bool = False, admins: bool = True) -> None:
        self.dir = Directory(users={}, groups={}, members={}, enabled=enabled)
        if admins:
            self.dir.groups[ADMIN_ID] = LocalGroup(ADMIN_ID, None, ADMIN_GROUP, False)

    def user(
        self,
        lid: int,
        user_name: str,
        *,
        entra: str | None = None,
        email: str | None = None,
        name: str | None = None,
        status: str = "active",
        managed: bool | None = None,
    ) -> Local:
        self.dir.users[lid] = LocalUser(
            id=lid,
            entra_id=entra,
            user_name=user_name,
            display_name=name if name is not None else user_name.split("@")[0],
            email=email if email is not None else user_name,
            status=status,  # type: ignore[arg-type]
            managed=managed if managed is not None else entra is not None,
        )
        return self

    def group(self, lid: int, name: str, *, entra: str | None = None, members: list[int] = ()) -> Local:  # type: ignore[assignment]
        self.dir.groups[lid] = LocalGroup(lid, entra, name, entra is not None)
        self.dir.members[lid] = set(members)
        return self

    def admins(self, *, entra: str | None = None, members: list[int] = ()) -> Local:  # type: ignore[assignment]
        return self.group(ADMIN_ID, ADMIN_GROUP, entra=entra, members=members)

    def invite(self, iid: int, email: str) -> Local:
        self.dir.invites[iid] = email
        return self

    def build(self) -> Directory:
        return self.dir


# --------------------------------------------------------------------------- reading plans


def run(entra: Tenant | EntraView, local: Local | Directory | None = None, **settings: object) -> Plan:
    view = entra.build() if isinstance(entra, Tenant) else entra
    directory = (local or Local()).build() if not isinstance(local, Directory) else local
    return plan(view, directory, PlanSettings(**settings))  # type: ignore[arg-type]


def changes(p: Plan, action: str | None = None, object_type: str | None = None) -> list[Change]:
    return [
        c
        for c in p.changes
        if (action is None or c.action == action) and (object_type is None or c.object_type == object_type)
    ]


def one(p: Plan, action: str, object_type: str, entra_id: str | None = None) -> Change:
    found = [c for c in changes(p, action, object_type) if entra_id is None or c.entra_id == entra_id]
    assert len(found) == 1, f"expected one {action} {object_type} {entra_id}, got {found!r}\nplan: {summary(p)}"
    return found[0]


def summary(p: Plan) -> list[tuple[str, str, str | None, str]]:
    """A compact, comparable view of a plan: (action, object type, entra id, name)."""
    return [(c.action, c.object_type, c.entra_id, c.name) for c in p.changes]


def real_changes(p: Plan) -> list[Change]:
    """Everything but skip entries: what would change the directory."""
    return [c for c in p.changes if c.action != "skip"]


def skips(p: Plan) -> list[Change]:
    return [c for c in p.changes if c.action == "skip"]


def added(p: Plan) -> set[tuple[str | None, object]]:
    """add_member changes as (group entra id, user entra id)."""
    return {(c.entra_id, c.user_entra_id) for c in changes(p, "add_member")}


def removed(p: Plan) -> set[tuple[str | None, object]]:
    """remove_member changes as (group entra id, local user id)."""
    return {(c.entra_id, c.user_ref[1] if c.user_ref else None) for c in changes(p, "remove_member")}
