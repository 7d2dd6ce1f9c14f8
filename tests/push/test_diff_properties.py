"""Property-based tests of ``push.diff``: for random directories and random application states,
applying the operations to a model application gives exactly the desired state (R20-R24)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.model import ADMIN_GROUP
from syncd.push.diff import (
    USER_ATTRS,
    AppGroup,
    AppState,
    AppUser,
    Desired,
    GroupValues,
    UserValues,
    diff,
    name_waves,
)

UIDS = list(range(1, 13))
GIDS = list(range(1, 6))

values = st.builds(
    UserValues,
    user_name=st.sampled_from(["a@x", "b@x", "c@x", "A@x"]),
    display_name=st.sampled_from([None, "A", "B"]),
    email=st.sampled_from([None, "a@x", "z@x"]),
    active=st.booleans(),
    external_id=st.sampled_from([None, "e1", "e2"]),
)
group_names = st.sampled_from(["Team", "Ops", "Dev", "team"])


def _admin_first(groups: dict) -> dict:
    # the local Administrators group keeps its id and its name (R8): group 1 here
    return {g: v._replace(display_name=ADMIN_GROUP) if g == 1 else v for g, v in groups.items()}


@st.composite
def scenario(draw):
    desired_users = draw(st.dictionaries(st.sampled_from(UIDS), values, max_size=10))
    active = [u for u, v in desired_users.items() if v.active]
    desired_groups = _admin_first(draw(st.dictionaries(st.sampled_from(GIDS), st.builds(
        GroupValues, group_names, st.sampled_from([None, "g1", "g2"]),
        st.frozensets(st.sampled_from(active), max_size=6) if active else st.just(frozenset())), max_size=4)))
    # the application's state: linked users (managed or not any more), groups with linked members
    linked = draw(st.dictionaries(st.sampled_from(UIDS), values, max_size=10))
    state_users = {u: AppUser(f"app-u{u}", v) for u, v in linked.items()}
    state_groups = draw(st.dictionaries(st.sampled_from(GIDS), st.builds(
        AppGroup, st.just("x"), group_names, st.sampled_from([None, "g1"]),
        st.frozensets(st.sampled_from(list(linked)), max_size=6) if linked else st.just(frozenset()),
        st.booleans()), max_size=4))
    state_groups = _admin_first({g: ag._replace(app_id=f"app-g{g}") for g, ag in state_groups.items()})
    return Desired(desired_users, desired_groups), AppState(state_users, state_groups)


def apply(state: AppState, ops) -> tuple[dict, dict, list]:
    """A model application: users and groups by local id; what a forget leaves alone is kept apart."""
    users = {u: au.values for u, au in state.users.items()}
    groups = {g: (ag.display_name, ag.external_id, set(ag.members)) for g, ag in state.groups.items()}
    forgotten = []
    for op in ops:
        if op.kind == "create_user":
            assert op.local_id not in users and op.user.active  # never created deactivated
            users[op.local_id] = op.user
        elif op.kind == "update_user":
            old = users[op.local_id]
            assert op.changed and all(getattr(old, a) != getattr(op.user, a) for a in op.changed)
            # only what changed is replaced
            users[op.local_id] = old._replace(**{a: getattr(op.user, a) for a in op.changed})
        elif op.kind == "create_group":
            assert op.local_id not in groups
            assert all(m in users for m in op.group.members)
            groups[op.local_id] = (op.group.display_name, op.group.external_id, set(op.group.members))
        elif op.kind == "update_group":
            name, ext, members = groups[op.local_id]
            assert all(m in users for m in op.add) and not set(op.add) & members and set(op.remove) <= members
            groups[op.local_id] = (op.group.display_name if "display_name" in op.changed else name,
                                   op.group.external_id if "external_id" in op.changed else ext,
                                   (members | set(op.add)) - set(op.remove))
        elif op.kind == "delete_group":
            assert groups[op.local_id][0] != ADMIN_GROUP
            del groups[op.local_id]
        elif op.kind == "forget_group":
            forgotten.append(groups.pop(op.local_id))
        else:  # pragma: no cover
            raise AssertionError(op.kind)
    return users, groups, forgotten


def _admin_active(users: dict, groups: dict) -> bool | None:
    found = [g for g in groups.values() if g[0] == ADMIN_GROUP]
    if not found:
        return None
    return any(users[m].active for g in found for m in g[2] if m in users)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_operations_reach_the_desired_state(case) -> None:
    desired, state = case
    plan = diff(desired, state)
    users, groups, forgotten = apply(state, plan.ops)
    # never a user deleted, never a user that is not managed touched
    assert set(state.users) <= set(users)
    for uid, au in state.users.items():
        if uid not in desired.users:
            assert users[uid] == au.values
    before_admin = _admin_active({u: a.values for u, a in state.users.items()},
                                 {g: (a.display_name, a.external_id, a.members) for g, a in state.groups.items()})
    if before_admin:
        assert _admin_active(users, {**groups, **{-i: f for i, f in enumerate(forgotten, 1)}}), "Administrators emptied"
    if plan.admin_held:
        assert plan.errors and before_admin
        return
    assert not plan.held
    for uid, want in desired.users.items():
        if uid in state.users or want.active:
            assert users[uid] == want
        else:
            assert uid not in users  # a deactivated user is never created
    expected_groups = {g: (v.display_name, v.external_id, set(v.members)) for g, v in desired.groups.items()}
    assert groups == expected_groups
    # converged: the state reached needs nothing more
    reached = AppState({u: AppUser(f"app-u{u}", v) for u, v in users.items()},
                       {g: AppGroup(f"app-g{g}", n, e, frozenset(m)) for g, (n, e, m) in groups.items()})
    assert diff(desired, reached).ops == []


@settings(max_examples=200, deadline=None)
@given(scenario(), st.integers(min_value=1, max_value=4), st.frozensets(st.sampled_from(UIDS)))
def test_thresholds_and_holds(case, threshold: int, hold) -> None:
    desired, state = case
    plan = diff(desired, state, threshold=threshold, hold=hold)
    users, groups, _ = apply(state, plan.ops)
    deactivated = [op for op in plan.ops if op.action == "deactivate"]
    assert len(deactivated) <= threshold
    for op in deactivated:
        assert op.local_id not in hold
    for uid in plan.held_users:
        # a held user stays active there, and in every group it was in
        assert users[uid].active
        for gid, ag in state.groups.items():
            if uid in ag.members and gid in groups:
                assert uid in groups[gid][2]
    approved = diff(desired, state, threshold=threshold, approve=True)
    due = [u for u, v in desired.users.items() if u in state.users and state.users[u].values.active and not v.active]
    if not approved.admin_held:
        assert len([op for op in approved.ops if op.action == "deactivate"]) == len(due)


def test_no_change_no_operation() -> None:
    v = UserValues("a@x", "A", "a@x", True, "e1")
    desired = Desired({1: v}, {7: GroupValues("Team", "g", frozenset({1}))})
    state = AppState({1: AppUser("u", v)}, {7: AppGroup("g7", "Team", "g", frozenset({1}))})
    assert diff(desired, state).ops == []


def test_changed_attributes_only() -> None:
    old = UserValues("a@x", "A", "a@x", True, "e1")
    new = old._replace(display_name="B", active=False)
    (op,) = diff(Desired({1: new}, {}), AppState({1: AppUser("u", old)})).ops
    assert op.action == "deactivate" and op.changed == ("display_name", "active")
    assert set(op.changed) <= set(USER_ATTRS)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(min_value=1, max_value=8))
def test_name_waves_never_ask_for_a_name_another_user_holds(data, n: int) -> None:
    """Users linked under unique names take each other's (chains, swaps, cycles) or new ones;
    a model application that refuses a taken userName (409) accepts every wave and ends with
    the desired names."""
    names = [f"n{i}@x" for i in range(n + 3)]
    old = data.draw(st.permutations(names))[:n]
    new = data.draw(st.permutations(names))[:n]
    state = AppState({u: AppUser(f"app-u{u}", UserValues(old[u], None, None, True, f"e{u}")) for u in range(n)}, {})
    desired = Desired({u: UserValues(new[u], None, None, True, f"e{u}") for u in range(n)}, {})
    ops = diff(desired, state).ops
    held = {u: old[u].casefold() for u in range(n)}
    for wave in name_waves(ops, state):
        taken = set(held.values())
        assert len({op.local_id for op in wave}) == len(wave)  # (one request per user and wave)
        for op in wave:
            assert op.user is not None
            if op.user.user_name.casefold() != held[op.local_id]:
                assert op.user.user_name.casefold() not in taken, (op, held)
        for op in wave:
            held[op.local_id] = op.user.user_name.casefold()
    assert held == {u: new[u].casefold() for u in range(n)}
