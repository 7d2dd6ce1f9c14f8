"""The full plan reads only the Entra users within reach; it must plan exactly what the
whole mirror would (the users it leaves out are out of scope and unknown locally)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import config as config_mod
from syncd.plan.rules import plan
from syncd.plan.settings import PlanSettings
from syncd.simulator import Simulator
from syncd.simulator.generate import generate_tenant
from syncd.source.graph import read_graph
from syncd.store.db import Store

from .conftest import Syncd
from .test_delta_property import apply_op, batches


class _RollBack(Exception):
    pass


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), transitive=st.booleans(), batches=batches)
def test_the_view_within_reach_plans_what_the_whole_mirror_plans(seed, transitive, batches):
    # generate_tenant leaves some users in no group and unassigned: the ones left out
    t = generate_tenant(30, 3, 4, nested_groups=1, guests=2, disabled=2, assign="groups", seed=seed)
    with tempfile.TemporaryDirectory() as tmp, Simulator(t) as sim:
        s = Syncd(sim, Path(tmp))
        s.config_path.write_text(sim.config_toml(str(s.store), sync={
            "deactivation_threshold": 0, "group_members": "transitive" if transitive else "direct"}))
        config = config_mod.load(str(s.config_path))
        plan_settings = PlanSettings.from_config(config)
        s.cycle()
        serial = [0]
        left_out = planned = 0
        for batch in batches:
            for name, x, y in batch:
                apply_op(t, name, x, y, serial)
            store = Store(str(s.store))
            try:
                # the mirror as this read leaves it, the directory as it was: what a plan sees
                read = read_graph(config.entra, json.loads(store.get_meta("delta_links") or "{}"), 30)
                with pytest.raises(_RollBack), store.transaction():
                    store.apply_read(read)
                    directory = store.load_directory()
                    whole = store.load_entra_view()
                    reach = store.load_entra_view(within_reach=True)
                    left_out += len(whole.users) - len(reach.users)
                    wanted = plan(whole, directory, plan_settings)
                    assert plan(reach, directory, plan_settings) == wanted
                    planned += len(wanted.changes)
                    raise _RollBack
            finally:
                store.close()
            s.cycle()
        assert left_out > 0, "the tenant should hold users out of reach"
