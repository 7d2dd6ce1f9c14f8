"""`syncd explain USER`: provision-on-demand steps from the store's mirror of Entra, one
sentence at the end; AADSTS50105 in plain words for a user who is not assigned."""

from __future__ import annotations

import pytest

from syncd import config as config_mod
from syncd.explain import explain
from syncd.simulator import Simulator, Tenant
from syncd.store.db import Store

from .conftest import Env


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """One tenant, synced twice (frank unassigned in between), shared by the read-only tests."""
    t = Tenant(domain="contoso.onmicrosoft.com")
    with Simulator(t) as sim:
        env = Env(t, sim, tmp_path_factory.mktemp("explain"))
        env.configure()
        yield env, _populate_and_sync(env)


@pytest.fixture
def env_ids(synced):
    return synced


def _populate_and_sync(env):
    t = env.tenant
    ids = {}
    ids["ada"] = t.add_user("ada@contoso.onmicrosoft.com")
    t.assign(ids["ada"])
    ids["bob"] = t.add_user("bob@contoso.onmicrosoft.com")
    sales = t.add_group("Sales")
    t.add_member(sales, ids["bob"])
    t.assign(sales)
    ids["carol"] = t.add_user("carol@contoso.onmicrosoft.com")
    outer, inner = t.add_group("Outer"), t.add_group("Inner")
    t.add_member(outer, inner)
    t.add_member(inner, ids["carol"])
    t.assign(outer)
    ids["dave"] = t.add_user("dave@contoso.onmicrosoft.com")
    ids["erin"] = t.add_user("erin@contoso.onmicrosoft.com", enabled=False)
    t.assign(ids["erin"])
    ids["frank"] = t.add_user("frank@contoso.onmicrosoft.com")
    t.assign(ids["frank"])
    assert env.cli("sync").code == 0
    t.unassign(ids["frank"])
    assert env.cli("sync").code == 0
    return ids


def _explain(env, ref: str):
    cfg = config_mod.load(str(env.config_path))
    with Store(cfg.store_path) as store:
        return explain(store, cfg, ref)


def _step(ex, name: str):
    return next(s for s in ex.steps if s.name == name)


def test_assigned_directly(env_ids):
    env, _ = env_ids
    ex = _explain(env, "ada@contoso.onmicrosoft.com")
    assert ex.provisioned
    assert _step(ex, "Assigned to the application").detail.startswith("assigned to the application directly")
    assert _step(ex, "In the local directory").result == "yes"
    assert "create (success) in cycle" in _step(ex, "Last action").detail
    assert ex.conclusion.startswith("ada@contoso.onmicrosoft.com is provisioned")
    assert ex.mirror_as_of is not None and ex.mirror_as_of["cycle_id"] in _step(ex, "Entra data").detail


def test_through_a_group(env_ids):
    env, ids = env_ids
    ex = _explain(env, ids["bob"])  # by object id
    assert ex.provisioned
    assert "'Sales'" in _step(ex, "Assigned to the application").detail


def test_only_through_a_nested_group(env_ids):
    env, _ = env_ids
    ex = _explain(env, "carol@contoso.onmicrosoft.com")
    assert not ex.provisioned
    detail = _step(ex, "Assigned to the application").detail
    assert "'Outer' → 'Inner'" in detail and "not counted" in detail
    assert "only a member of a nested group" in ex.conclusion and "transitive" in ex.conclusion


def test_nested_group_counts_in_transitive_mode(env):
    t = env.tenant
    outer, inner = t.add_group("Outer"), t.add_group("Inner")
    t.add_member(outer, inner)
    t.add_member(inner, t.add_user("carol@contoso.onmicrosoft.com"))
    t.assign(outer)
    env.configure(sync={"group_members": "transitive"})
    assert env.cli("sync").code == 0
    ex = _explain(env, "carol@contoso.onmicrosoft.com")
    assert ex.provisioned and "counted" in _step(ex, "Assigned to the application").detail


def test_not_assigned_is_aadsts50105_in_plain_words(env_ids):
    env, _ = env_ids
    ex = _explain(env, "dave@contoso.onmicrosoft.com")
    assert not ex.provisioned
    assert _step(ex, "Found in Entra ID").result == "yes"
    assert "is not assigned to the application, directly or through a group" in ex.conclusion
    assert "AADSTS50105" in ex.conclusion and "assign the user" in ex.conclusion


def test_disabled(env_ids):
    env, _ = env_ids
    ex = _explain(env, "erin@contoso.onmicrosoft.com")
    assert _step(ex, "Enabled in Entra ID").result == "no"
    assert "disabled in Entra ID" in ex.conclusion and not ex.provisioned


def test_unassigned_after_provisioning(env_ids):
    env, _ = env_ids
    ex = _explain(env, "frank@contoso.onmicrosoft.com")
    assert "deactivated" in _step(ex, "In the local directory").detail
    assert _step(ex, "Last action").detail.startswith("deactivate (success) in cycle")
    assert "not assigned" in ex.conclusion


def test_unknown_user(env_ids):
    env, _ = env_ids
    ex = _explain(env, "nobody@contoso.onmicrosoft.com")
    assert _step(ex, "Found in Entra ID").result == "no"
    assert "was not found in Entra ID" in ex.conclusion


def test_cli_text_and_json(env_ids):
    env, _ = env_ids
    r = env.cli("explain", "dave@contoso.onmicrosoft.com")
    assert r.code == 0, r
    lines = r.out.strip().splitlines()
    assert lines[0] == "explain dave@contoso.onmicrosoft.com"
    assert any("Found in Entra ID" in line for line in lines)
    assert "AADSTS50105" in lines[-1]  # ends in one sentence
    doc = env.json("explain", "ada@contoso.onmicrosoft.com")
    assert doc["provisioned"] is True and doc["conclusion"] and doc["steps"]


def test_before_any_cycle(env):
    r = env.cli("explain", "ada@contoso.onmicrosoft.com")
    assert r.code == 2 and "no store at" in r.err and "syncd sync" in r.err, r  # nothing to explain from
    assert not env.store_path.parent.exists()
    assert env.cli("users", "add", "bob@example.com").code == 0  # a store, and still no cycle
    r = env.cli("explain", "ada@contoso.onmicrosoft.com")
    assert r.code == 0, r
    assert "no cycle has completed yet" in r.out


def test_what_the_next_cycle_would_do_is_the_planners_answer(env):
    """explain runs the planner over the view a cycle would plan the user with: a rename the
    last cycle refused (R6a) is what it says is next, with the planner's reason, and the
    cycle that follows does exactly that."""
    t = env.tenant
    env.configure()
    assert env.cli("users", "add", "x@contoso.onmicrosoft.com", "--name", "Local X").code == 0
    uid = t.add_user("someone@contoso.onmicrosoft.com")
    t.assign(uid)
    assert env.cli("sync").code == 0
    assert "nothing to change" in _step(_explain(env, uid), "Next cycle").detail
    t.update_user(uid, upn="x@contoso.onmicrosoft.com")
    assert env.cli("sync").code == 3  # (partial: the rename is refused)
    ex = _explain(env, uid)
    detail = _step(ex, "Next cycle").detail
    assert detail.startswith("skip: user ") and "cannot be renamed as x@contoso.onmicrosoft.com" in detail, detail
    assert "cannot be provisioned" in ex.conclusion and "held by x@contoso.onmicrosoft.com" in ex.conclusion
    # and the next cycle does just that, for the same reason
    import json

    r = env.cli("sync", "--json")
    assert r.code == 3, r
    [entry] = [e for e in json.loads(r.out)["entries"] if e["entra_id"] == uid and e["object_type"] == "user"]
    assert detail == f"{entry['action']}: {entry['reason']}"
