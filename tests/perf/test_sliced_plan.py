"""A full plan in slices (large tenants, units.SLICE_USERS) reaches what one whole plan reaches.

Hypothesis draws a tenant (with an assigned Split_Administrators group) and batches of random
changes. After each batch, store A runs a full cycle as one plan; store B runs the same full
cycle in slices of 4 users. Both must end with the same directory, the same mirror, the same
staged deactivations, the same status, and the same entries (in any order). With a
deactivation threshold, the guards must also judge the slices as they judge the whole.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import config as config_mod
from syncd import units
from syncd.cycle import CycleOptions, run_cycle
from syncd.simulator import Simulator
from syncd.simulator.generate import generate_tenant
from syncd.store import apply as apply_mod

from .conftest import Syncd, snapshot
from .test_delta_property import apply_op, batches


def full_cycle(s: Syncd, slice_users: int, behind_at: int | None = None):
    """``behind_at``: each slice's last user and membership batches of at least that many
    are written behind its entries (store.apply._Behind), instead of from 1,000 on."""
    old, units.SLICE_USERS = units.SLICE_USERS, slice_users
    old_behind = apply_mod.BEHIND_AT
    apply_mod.BEHIND_AT = behind_at or old_behind
    try:
        return run_cycle(config_mod.load(str(s.config_path)), CycleOptions(full=True))
    finally:
        units.SLICE_USERS = old
        apply_mod.BEHIND_AT = old_behind


def entries(report) -> Counter:
    return Counter((e["action"], e["object_type"], e["entra_id"], e["name"], e["status"], e["reason"]) for e in report.entries)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), transitive=st.booleans(), threshold=st.sampled_from([0, 2]), batches=batches)
def test_a_plan_in_slices_reaches_what_the_whole_plan_reaches(seed, transitive, threshold, batches):
    t = generate_tenant(24, 4, 5, nested_groups=1, guests=2, disabled=2, assign="both", seed=seed)
    admins = t.add_group("Split_Administrators")
    for uid in list(t.users)[:3]:
        t.add_member(admins, uid)
    t.assign(admins)
    with tempfile.TemporaryDirectory() as tmp, Simulator(t) as sim:
        work = Path(tmp)
        stores = []
        for name in ("whole", "sliced"):
            s = Syncd(sim, work / name)
            s.config_path.write_text(sim.config_toml(str(s.store), sync={
                "deactivation_threshold": threshold, "group_members": "transitive" if transitive else "direct"}))
            stores.append(s)
        whole, sliced = stores
        serial = [0]
        sliced_seen = 0
        for n, batch in enumerate([[]] + batches):
            for name, x, y in batch:
                apply_op(t, name, x, y, serial)
            want = full_cycle(whole, 10**9)
            got = full_cycle(sliced, 4, behind_at=1)
            assert not any("slices" in note for note in want.notes)
            sliced_seen += any("slices" in note for note in got.notes)
            assert got.status == want.status, (n, got.errors, want.errors)
            assert entries(got) == entries(want), f"after batch {n} ({batch})"
            assert sorted(got.errors) == sorted(want.errors)
            a, b = snapshot(whole.store), snapshot(sliced.store)
            for part in a:
                assert b[part] == a[part], f"after batch {n} ({batch}): {part} differs"
        assert sliced_seen  # the tenant is bigger than a slice: the sliced path ran


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_dry_run_in_slices_previews_the_real_run(tmp_path, dry_run):
    t = generate_tenant(30, 3, 6, assign="both", seed=7)
    with Simulator(t) as sim:
        s = Syncd(sim, tmp_path / "s")
        config = config_mod.load(str(s.config_path))
        old, units.SLICE_USERS = units.SLICE_USERS, 5
        try:
            preview = run_cycle(config, CycleOptions(dry_run=True))
            real = run_cycle(config, CycleOptions(dry_run=dry_run))
        finally:
            units.SLICE_USERS = old
        assert entries(preview) == entries(real) and preview.counts["create"] > 5
        users = snapshot(s.store)["users"]
        assert (len(users) > 5) is (not dry_run)  # a dry run leaves nothing behind


def test_slices_keep_the_last_administrator_as_the_whole_plan_does(tmp_path):
    # R12 and R15 judge what every slice planned, together: the admins sit in different slices
    t = generate_tenant(40, 2, 5, assign="groups", seed=3)
    admins = t.add_group("Split_Administrators")
    first, last = sorted(t.users)[0], sorted(t.users)[-1]  # the first and the last slice
    for uid in (first, last):
        t.add_member(admins, uid)
    t.assign(admins)
    with Simulator(t) as sim:
        stores = []
        for name in ("whole", "sliced"):
            s = Syncd(sim, tmp_path / name, threshold=1)
            stores.append(s)
        for s, size in zip(stores, (10**9, 4), strict=True):
            assert full_cycle(s, size).status == "succeeded"
        t.remove_member(admins, first)
        t.remove_member(admins, last)
        t.disable_user(last)
        want = full_cycle(stores[0], 10**9)
        got = full_cycle(stores[1], 4)
        assert any("slices" in note for note in got.notes)
        assert want.status == got.status == "held"
        assert any("R12" in e for e in want.errors) and sorted(got.errors) == sorted(want.errors)
        assert entries(got) == entries(want)
        assert snapshot(stores[0].store) == snapshot(stores[1].store)
