"""Property-based tests of the planner: random small tenants and directories.

``apply`` below is the reference: a tiny pure applier with the store's semantics
(syncd/store/apply.py). Applying a plan and planning again must give nothing more to do.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

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
from syncd.plan.guards import apply_guards
from syncd.plan.rules import plan, r1_scope, r5_map_attributes
from syncd.plan.settings import PlanSettings

from .builders import ADMIN_ID, real_changes, summary

# modest by default so the suite runs in seconds; SYNCD_PLAN_EXAMPLES=2000 for a deeper search
PROPS = settings(
    max_examples=int(os.environ.get("SYNCD_PLAN_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- reference applier


def apply(d: Directory, p: Plan) -> Directory:
    """Apply the changes whose status is ``success``, as the store does; staged/held ones wait."""
    users = dict(d.users)
    groups = dict(d.groups)
    members = {gid: set(m) for gid, m in d.members.items()}
    invites = dict(d.invites)

    def user_by_entra(eid: str) -> int:
        (lid,) = [u.id for u in users.values() if u.entra_id == eid]
        return lid

    def group_by_entra(eid: str) -> int:
        (lid,) = [g.id for g in groups.values() if g.entra_id == eid]
        return lid

    def resolve(ref: tuple[str, str | int] | None, by_entra) -> int:
        assert ref is not None
        where, key = ref
        return int(key) if where == "local" else by_entra(key)

    def write_user(c: Change, lid: int, **extra: object) -> None:
        v = c.values
        users[lid] = users[lid]._replace(
            user_name=v["user_name"], display_name=v["display_name"], email=v["email"],
            status=v["status"], **extra,
        )

    for c in p.changes:
        if c.status != "success" or c.action == "skip":
            continue
        kind = (c.object_type, c.action)
        if kind == ("user", "create"):
            assert c.entra_id and all(u.entra_id != c.entra_id for u in users.values())
            lid = max(users, default=0) + 1
            v = c.values
            users[lid] = LocalUser(lid, c.entra_id, v["user_name"], v["display_name"], v["email"], "active", True)  # type: ignore[arg-type]
        elif kind == ("user", "adopt"):
            assert c.local_id in users and users[c.local_id].entra_id is None
            write_user(c, c.local_id, entra_id=c.entra_id, managed=True)
        elif kind in (("user", "update"), ("user", "reactivate")):
            write_user(c, c.local_id)  # type: ignore[arg-type]
        elif kind == ("user", "deactivate"):
            write_user(c, c.local_id)  # type: ignore[arg-type]
            for m in members.values():
                m.discard(c.local_id)  # type: ignore[arg-type]
        elif kind == ("group", "create"):
            assert all(g.entra_id != c.entra_id for g in groups.values())
            lid = max(groups, default=0) + 1
            groups[lid] = LocalGroup(lid, c.entra_id, str(c.values["name"]), True)
            members[lid] = set()
        elif kind == ("group", "adopt"):
            assert c.local_id in groups and groups[c.local_id].entra_id is None
            groups[c.local_id] = replace(groups[c.local_id], entra_id=c.entra_id, managed=True)
        elif kind == ("group", "update"):
            g = groups[c.local_id]  # type: ignore[index]
            if "name" in c.values:
                g = replace(g, name=str(c.values["name"]))
            if c.values.get("managed") is False:
                g = replace(g, managed=False, entra_id=None)
            groups[g.id] = g
        elif kind == ("group", "delete"):
            del groups[c.local_id]  # type: ignore[arg-type]
            members.pop(c.local_id, None)  # type: ignore[arg-type]
        elif kind == ("membership", "add_member"):
            gid = resolve(c.group_ref, group_by_entra)
            members.setdefault(gid, set()).add(resolve(c.user_ref, user_by_entra))
        elif kind == ("membership", "remove_member"):
            gid = resolve(c.group_ref, group_by_entra)
            members.setdefault(gid, set()).discard(resolve(c.user_ref, user_by_entra))
        elif kind == ("invite", "revoke"):
            del invites[c.local_id]  # type: ignore[arg-type]
        else:
            raise AssertionError(f"unknown change {kind}")
    return Directory(users=users, groups=groups, members=members, enabled=True, invites=invites)


# --------------------------------------------------------------------------- generators

LOCALS = ["alice", "Alice", "bob", "carol", "dave"]
DOMAINS = ["contoso.com", "fabrikam.com"]
GROUP_NAMES = [
    "Sales", "sales", "Ops", "Engineering", "Administrators", "Split_Administrators",
    "IT-Admins", "A very long group name over 24", None,
]


# module-level strategies only: building strategies inside a draw is what makes generation slow
BOOL = st.booleans()
INDEX = st.integers(0, 63)
MASK = st.integers(0, 2**8 - 1)
UPN_KIND = st.sampled_from(["member", "member", "guest", "none"])
LOCAL_PART = st.sampled_from(LOCALS)
DOMAIN = st.sampled_from(DOMAINS)
DISPLAY = st.sampled_from([None, "Name A", "Name B"])
GROUP_NAME = st.sampled_from(GROUP_NAMES)
LOCAL_GROUP_NAME = st.sampled_from(["Sales", "Ops", "Local team", "Marketing", "OPS"])
STATUS = st.sampled_from(["active", "deactivated"])
SMALL = st.integers(0, 2)


def pick(draw, pool: list):
    return pool[draw(INDEX) % len(pool)]


def subset(draw, pool: list, limit: int = 8) -> list:
    mask = draw(MASK)
    return [x for i, x in enumerate(pool[:limit]) if mask >> i & 1]


def upn(draw) -> str | None:
    kind, alias, domain = draw(UPN_KIND), draw(LOCAL_PART), draw(DOMAIN)
    if kind == "none":
        return None
    if kind == "guest":
        return f"{alias}_{domain}#EXT#@contoso.onmicrosoft.com"
    return f"{alias}@{domain}"


@st.composite
def tenants(draw) -> EntraView:
    users = {}
    for i in range(draw(st.integers(0, 6))):
        u = upn(draw)
        mail = f"{draw(LOCAL_PART)}@{draw(DOMAIN)}" if draw(BOOL) else None
        users[f"u{i}"] = EntraUser(
            f"u{i}", u, draw(DISPLAY), mail, draw(BOOL), "Guest" if u and "#EXT#" in u else "Member"
        )
    groups = {
        f"g{i}": EntraGroup(f"g{i}", draw(GROUP_NAME), draw(BOOL) or draw(BOOL))
        for i in range(draw(st.integers(0, 5)))
    }
    members = {}
    for gid in groups:
        m: dict = {uid: "user" for uid in subset(draw, sorted(users))}
        for sub in subset(draw, sorted(groups))[:2]:
            m[sub] = "group"
        members[gid] = m
    assigned = subset(draw, sorted(users)) + subset(draw, sorted(groups))
    assignments = {pid: "Group" if pid in groups else "User" for pid in assigned}
    return EntraView(users=users, groups=groups, members=members, assignments=assignments)  # type: ignore[arg-type]


@st.composite
def directories(draw, entra: EntraView) -> Directory:
    entra_users = [None, *sorted(entra.users), "u-gone1", "u-gone2"]
    entra_groups = [None, *sorted(entra.groups), "g-gone"]
    users: dict[int, LocalUser] = {}
    names: set[str] = set()
    linked: set[str] = set()
    for lid in range(10, 10 + draw(st.integers(0, 5))):
        name = f"{draw(LOCAL_PART)}@{draw(DOMAIN)}"
        if name.casefold() in names:
            continue  # local names are unique (the CLI refuses duplicates)
        names.add(name.casefold())
        eid = pick(draw, entra_users)
        if eid in linked:
            eid = None
        if eid:
            linked.add(eid)
        email = pick(draw, [name, f"{draw(LOCAL_PART)}@fabrikam.com", None])
        users[lid] = LocalUser(lid, eid, name, "Someone", email, draw(STATUS), eid is not None)
    admin_entra = pick(draw, entra_groups)
    groups = {ADMIN_ID: LocalGroup(ADMIN_ID, admin_entra, ADMIN_GROUP, admin_entra is not None)}
    group_names = {ADMIN_GROUP.casefold()}
    linked_groups = {admin_entra} if admin_entra else set()
    for lid in range(20, 20 + draw(st.integers(0, 3))):
        name = draw(LOCAL_GROUP_NAME)
        if name.casefold() in group_names:
            continue
        group_names.add(name.casefold())
        eid = pick(draw, entra_groups)
        if eid in linked_groups:
            eid = None
        if eid:
            linked_groups.add(eid)
        groups[lid] = LocalGroup(lid, eid, name, eid is not None)
    members: dict[int, set[int]] = {}
    for gid, g in groups.items():
        # deactivated users have left their managed groups (the store removes them)
        pool = sorted(u.id for u in users.values() if u.status == "active" or not g.managed)
        members[gid] = set(subset(draw, pool))
    invites = {i: f"invite{i}@contoso.com" for i in range(draw(SMALL))}
    return Directory(users=users, groups=groups, members=members, enabled=draw(BOOL), invites=invites)


plan_settings = st.builds(
    PlanSettings,
    scope=st.sampled_from(["assigned", "all"]),
    group_members=st.sampled_from(["direct", "transitive"]),
    skip_out_of_scope_deactivations=st.booleans(),
    email=st.sampled_from(["userPrincipalName", "originalUserPrincipalName", "mail"]),
    admin_group_aliases=st.sampled_from([("Split_Administrators",), ("IT-Admins",), ("Split_Administrators", "IT-Admins")]),
    max_group_name_length=st.just(24),
    deactivation_threshold=st.sampled_from([0, 1, 500]),
)


@st.composite
def worlds(draw) -> tuple[EntraView, Directory, PlanSettings]:
    entra = draw(tenants())
    return entra, draw(directories(entra)), draw(plan_settings)


def full(p: Plan) -> list[tuple]:
    return [(*s, c.local_id, c.status, sorted(c.values.items(), key=str), c.group_ref, c.user_ref, c.reason)
            for s, c in zip(summary(p), p.changes, strict=True)]


# --------------------------------------------------------------------------- properties


@PROPS
@given(worlds())
def test_plan_is_deterministic(world):
    entra, d, s = world
    assert full(plan(entra, d, s)) == full(plan(entra, d, s))


@PROPS
@given(worlds(), st.randoms(use_true_random=False))
def test_plan_does_not_depend_on_the_order_of_its_inputs(world, rnd: random.Random):
    entra, d, s = world

    def shuffled(m: dict) -> dict:
        items = list(m.items())
        rnd.shuffle(items)
        return dict(items)

    entra2 = EntraView(
        users=shuffled(entra.users), groups=shuffled(entra.groups),
        members=shuffled({k: shuffled(v) for k, v in entra.members.items()}), assignments=shuffled(entra.assignments),
    )
    d2 = Directory(shuffled(d.users), shuffled(d.groups), shuffled(d.members), d.enabled, shuffled(d.invites))
    assert full(plan(entra, d, s)) == full(plan(entra2, d2, s))


@PROPS
@given(worlds())
def test_applying_the_plan_converges_in_one_cycle(world):
    entra, d, s = world
    p1 = plan(entra, d, s)
    d1 = apply(d, p1)
    p2 = plan(entra, d1, s)
    assert real_changes(p2) == [], f"first: {summary(p1)}\nsecond: {summary(p2)}"
    # errors left are standing conditions that were already reported
    first = {(c.object_type, c.entra_id) for c in p1.changes if c.error}
    assert {(c.object_type, c.entra_id) for c in p2.changes if c.error} <= first
    # and the cycle after that is the same
    assert full(plan(entra, apply(d1, p2), s)) == full(p2)


@PROPS
@given(worlds())
def test_every_in_scope_enabled_mappable_user_ends_active_and_managed(world):
    entra, d, s = world
    p = plan(entra, d, s)
    d1 = apply(d, p)
    scope = r1_scope(entra, s)
    by_entra = {u.entra_id: u for u in d1.users.values() if u.entra_id}
    skipped = {c.entra_id for c in p.changes if c.action == "skip" and c.object_type == "user"}
    for uid in scope.users:
        user = entra.users[uid]
        mapped = r5_map_attributes(user, s)
        if not user.account_enabled or isinstance(mapped, str):
            continue
        local = by_entra.get(uid)
        if local is None:
            # the only reason not to provision it: another local user holds its user_name
            assert uid in skipped, summary(p)
            assert any(u.user_name.casefold() == mapped.user_name.casefold() for u in d1.users.values())
            continue
        assert (local.status, local.managed) == ("active", True)
        if uid in skipped:  # R6a: its user_name is held by another local user, so it keeps its own
            assert any(
                u.id != local.id and u.user_name.casefold() == mapped.user_name.casefold() for u in d1.users.values()
            ), summary(p)
            continue
        assert (local.user_name, local.email, local.display_name) == (mapped.user_name, mapped.email, user.display_name)


@PROPS
@given(worlds())
def test_no_disabled_deleted_or_out_of_scope_user_ends_active(world):
    entra, d, s = world
    d1 = apply(d, plan(entra, d, s))
    scope = r1_scope(entra, s)
    for u in d1.users.values():
        if u.entra_id is None:
            assert u.status == d.users[u.id].status  # unmanaged users stay under local control
            continue
        eu = entra.users.get(u.entra_id)
        gone_or_disabled = eu is None or not eu.account_enabled
        left_scope = u.entra_id not in scope.users and not s.skip_out_of_scope_deactivations
        if gone_or_disabled or left_scope:
            assert u.status == "deactivated"


@PROPS
@given(worlds())
def test_users_are_never_deleted_and_only_managed_groups_are(world):
    entra, d, s = world
    p = plan(entra, d, s)
    d1 = apply(d, p)
    assert set(d.users) <= set(d1.users)
    assert len(d1.users) >= len(d.users)
    for g in d.groups.values():
        if g.id not in d1.groups:
            assert g.managed and g.name != ADMIN_GROUP
            assert g.entra_id not in r1_scope(entra, s).groups


@PROPS
@given(worlds())
def test_administrators_is_never_renamed_or_removed(world):
    entra, d, s = world
    p = plan(entra, d, s)
    for c in p.changes:
        if c.object_type == "group" and c.local_id == ADMIN_ID:
            assert c.action != "delete"
            assert "name" not in c.values
    d1 = apply(d, p)
    assert d1.groups[ADMIN_ID].name == ADMIN_GROUP
    assert [g.id for g in d1.groups.values() if g.name.casefold() == ADMIN_GROUP.casefold()] == [ADMIN_ID]


@PROPS
@given(worlds())
def test_no_two_groups_share_a_name_ignoring_case(world):
    entra, d, s = world
    p = plan(entra, d, s)
    created = [str(c.values["name"]).casefold() for c in p.changes if (c.object_type, c.action) == ("group", "create")]
    assert len(created) == len(set(created))
    names = [g.name.casefold() for g in apply(d, p).groups.values()]
    assert len(names) == len(set(names)), summary(p)


@PROPS
@given(worlds())
def test_new_users_do_not_take_a_local_user_name(world):
    entra, d, s = world
    p = plan(entra, d, s)
    d1 = apply(d, p)
    new = [u for u in d1.users.values() if u.id not in d.users]
    for u in new:
        same = [o.id for o in d1.users.values() if o.user_name.casefold() == u.user_name.casefold()]
        assert same == [u.id], summary(p)


@PROPS
@given(worlds())
def test_error_entries_always_carry_their_reason(world):
    entra, d, s = world
    p = plan(entra, d, s)
    for c in p.changes:
        if c.error:
            assert c.reason.strip() and c.reason in p.errors
            assert c.action == "skip" and c.status == "skipped"
    assert len(p.errors) == sum(1 for c in p.changes if c.error)


@PROPS
@given(worlds())
def test_managed_groups_hold_exactly_their_active_in_scope_members(world):
    entra, d, s = world
    p = plan(entra, d, s)
    d1 = apply(d, p)
    scope = r1_scope(entra, s)
    skipped_groups = {c.entra_id for c in p.changes if c.action == "skip" and c.object_type == "group"}
    skipped_users = {c.entra_id for c in p.changes if c.action == "skip" and c.object_type == "user"}
    by_id = d1.users
    for g in d1.groups.values():
        if not g.managed or g.entra_id in skipped_groups:
            continue
        have = {by_id[lid].entra_id for lid in d1.members.get(g.id, ())}
        want = {
            u.entra_id for u in by_id.values()
            if u.status == "active" and u.entra_id in scope.group_users.get(g.entra_id, ())
        }
        # a user skipped by R5 keeps the memberships it had
        assert have - skipped_users == want - skipped_users, summary(p)
        assert all(by_id[lid].status == "active" for lid in d1.members.get(g.id, ()))


@PROPS
@given(worlds())
def test_guards_keep_an_active_administrator(world):
    entra, d, s = world
    admin_active = [lid for lid in d.members.get(ADMIN_ID, ()) if d.users[lid].status == "active"]
    p = plan(entra, d, s)
    guarded = apply_guards(p, d, s)
    d1 = apply(d, guarded.plan)
    if admin_active:
        assert any(d1.users[lid].status == "active" for lid in d1.members.get(ADMIN_ID, ())), summary(p)
    if any(c.status == "staged" for c in guarded.plan.changes):
        assert guarded.held and s.deactivation_threshold > 0


@settings(PROPS, max_examples=PROPS.max_examples * 4)  # (R12's holds are rare among random worlds)
@given(worlds(), st.integers(0, 3))
def test_guards_judge_the_deferred_changes_as_they_judge_the_whole_plan(world, threshold):
    """cycle._settle lets every other change go ahead and hands the guards only the
    deactivations and Administrators' memberships, with the count of users joining."""
    entra, d, s = world
    s = replace(s, deactivation_threshold=threshold)
    whole = apply_guards(plan(entra, d, s), d, s)
    admin = ("local", ADMIN_ID)
    p = plan(entra, d, s)
    judged = [c for c in p.changes if c.action == "deactivate" or (c.object_type == "membership" and c.group_ref == admin)]
    joining = sum(1 for c in p.changes if c.object_type == "user" and c.action in ("create", "adopt", "reactivate") and c.status == "success")
    target(float(whole.held) + len(judged) / 10)  # (toward the plans the guards hold)
    deferred = apply_guards(Plan(changes=judged), d, s, joining=joining)
    assert deferred.held == whole.held
    assert sorted(deferred.plan.errors) == sorted(e for e in whole.plan.errors if e not in p.errors)
    by_key = {(c.action, c.object_type, c.entra_id, c.user_entra_id): (c.status, c.reason) for c in whole.plan.changes}
    assert all(by_key[c.action, c.object_type, c.entra_id, c.user_entra_id] == (c.status, c.reason) for c in deferred.plan.changes)


@PROPS
@given(worlds())
def test_invites_are_revoked_once_and_only_before_sync_is_enabled(world):
    entra, d, s = world
    p = plan(entra, d, s)
    revoked = sorted(c.local_id for c in p.changes if c.action == "revoke")
    assert revoked == ([] if d.enabled else sorted(d.invites))
    d1 = apply(d, p)
    assert not [c for c in plan(entra, d1, s).changes if c.action == "revoke"]
