"""The generator, the demo tenant, config_toml and the ``python -m syncd.simulator`` process."""

from __future__ import annotations

import os
import signal
import ssl
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from syncd.simulator import Simulator
from syncd.simulator.generate import generate_tenant
from syncd.simulator.sample import DemoHandles, apply_demo_changes, demo_tenant

from .conftest import GraphClient


def test_generator_layout_and_determinism():
    t = generate_tenant(1000, 10, 150, nested_groups=2, guests=5, disabled=20, assign="both", seed=4)
    again = generate_tenant(1000, 10, 150, nested_groups=2, guests=5, disabled=20, assign="both", seed=4)
    assert list(t.users) == list(again.users) and t.tenant_id == again.tenant_id
    assert list(t.users) != list(generate_tenant(1000, 10, 150, seed=5).users)
    users = list(t.users.values())
    assert len(users) == 1000 and len(t.groups) == 12
    assert sum(not u.enabled for u in users) == 20
    guests = [u for u in users if u.user_type == "Guest"]
    assert len(guests) == 5 and "#EXT#@contoso.onmicrosoft.com" in guests[0].upn
    groups = list(t.groups.values())
    assert [len(g.members) for g in groups[:10]] == [151, 151] + [150] * 8  # nested ones in 0 and 1
    assert groups[10].id in groups[0].members and groups[11].id in groups[1].members
    assigned = t.assigned()
    assert sum(1 for v in assigned.values() if v == "Group") == 10
    assert sum(1 for v in assigned.values() if v == "User") == 100
    # a generated tenant still takes changes and serves them as deltas
    assert t.version > 0 and t.user_log_ids == []
    t.disable_user(users[0].id)
    assert t.user_changes(t.version - 1, t.version) == [users[0].id]


def test_generator_serves_pages(simulator):
    t = generate_tenant(2500, 3, 900, seed=1)
    with Simulator(t) as sim:
        graph = GraphClient(sim)
        items, link = graph.collect("/v1.0/users/delta", page_size=999, params={"$select": "id"})
        assert len(items) == 2500 and len({i["id"] for i in items}) == 2500 and link
        graph.close()


def test_demo_tenant():
    t = demo_tenant()
    demo = t.demo
    assert isinstance(demo, DemoHandles)
    assert 45 <= len(t.users) <= 55
    names = {g.name for g in t.groups.values()}
    assert "Split_Administrators" in names
    assert len(t.groups[demo.long_name_group].name) >= 25
    assert demo.nested_group in t.groups[demo.engineering].members
    assert demo.engineering in t.assigned() and demo.nested_group not in t.assigned()
    guest = t.users[demo.guest]
    assert guest.upn == "jane.doe_fabrikam.com#EXT#@contoso.onmicrosoft.com" and guest.user_type == "Guest"
    assert not t.users[demo.disabled].enabled
    assert all(t.assigned().get(u) == "User" for u in demo.direct_users)
    lines = apply_demo_changes(t)
    assert len(lines) == 4
    assert demo.to_unassign not in t.assigned()
    assert not t.users[demo.to_disable].enabled
    assert t.groups[demo.support].name == demo.renamed_to
    assert demo.new_member in t.groups[demo.engineering].members


def test_config_toml_is_a_valid_syncd_config(simulator, tmp_path):
    text = simulator.config_toml(str(tmp_path / "s.db"), sync={"scope": "all"},
                                 mapping={"email": "mail"})
    data = tomllib.loads(text)
    entra = data["entra"]
    assert entra["authority_host"] == entra["graph_endpoint"] == simulator.url
    assert entra["tenant_id"] == simulator.tenant.tenant_id
    assert data["sync"] == {"scope": "all"} and data["store"]["path"].endswith("s.db")
    secret_file = entra["client_secret_file"]
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    assert Path(secret_file).read_text() == simulator.tenant.client_secret
    assert simulator.tenant.client_secret not in text
    config_path = tmp_path / "syncd.toml"
    config_path.write_text(text)
    from syncd import config
    loaded = config.load(str(config_path))
    assert loaded.entra.graph_endpoint == simulator.url and loaded.sync.scope == "all"
    # a None override drops a key, e.g. to switch to a certificate
    dropped = tomllib.loads(simulator.config_toml("x.db", entra={"client_secret_file": None}))
    assert "client_secret_file" not in dropped["entra"]


def test_cli_process_serves_until_sigterm(tmp_path):
    config_path = tmp_path / "sim.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.simulator", "--users", "50", "--groups", "2",
         "--members-per-group", "10", "--write-config", str(config_path),
         "--store", str(tmp_path / "s.db")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:")
        data = tomllib.loads(config_path.read_text())
        assert data["entra"]["graph_endpoint"] == url
        ctx = ssl.create_default_context(cafile=data["entra"]["ca_bundle"])
        r = httpx.get(f"{url}/{data['entra']['tenant_id']}/v2.0/.well-known/openid-configuration",
                      verify=ctx, trust_env=False)
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        out = proc.stdout.read() + proc.stderr.read()
        assert "8Q~" not in out  # the secret is never printed
    finally:
        if proc.poll() is None:
            proc.kill()
            pytest.fail("the simulator did not stop on SIGTERM")


def test_churn_makes_exact_deltas():
    from syncd.simulator.generate import churn
    t = generate_tenant(300, 3, 50, seed=2)
    with Simulator(t) as sim:
        graph = GraphClient(sim)
        _, users_link = graph.collect("/v1.0/users/delta", params={"$select": "displayName"})
        _, groups_link = graph.collect("/v1.0/groups/delta", params={"$select": "members"})
        done = churn(t, changed=5, disabled=2, added=3, soft_deleted=1, member_moves=4, seed=9)
        assert done == {"changed": 5, "disabled": 2, "soft_deleted": 1, "added": 3,
                        "member_moves": 4}
        items, _ = graph.collect(users_link)
        assert len(items) == 5 + 2 + 3 + 1
        assert sum("@removed" in i for i in items) == 1
        groups, _ = graph.collect(groups_link)
        assert groups  # the moves and the new members show up as members@delta
        graph.close()


def test_control_channel(tenant):
    with Simulator(tenant, control=True) as sim:
        token = Path(sim.control_token_path).read_text()
        assert stat.S_IMODE(os.stat(sim.control_token_path).st_mode) == 0o600
        http = httpx.Client(base_url=sim.url, verify=ssl.create_default_context(cafile=sim.ca_path),
                            trust_env=False)
        assert http.post("/_simulator/call", json={"method": "disable_user"}).status_code == 403
        headers = {"X-Simulator-Control": token}
        r = http.post("/_simulator/call", headers=headers, json={
            "method": "add_user", "args": [f"new@{tenant.domain}"], "kwargs": {"display_name": "N"}})
        uid = r.json()["result"]
        assert tenant.users[uid].display_name == "N"
        r = http.post("/_simulator/call", headers=headers, json={"method": "add_fault",
                      "kwargs": {"path": "/users", "kind": "status", "status": 503}})
        assert r.status_code == 200 and len(sim.faults) == 1
        r = http.post("/_simulator/call", headers=headers, json={"method": "__class__"})
        assert r.status_code == 400
        r = http.post("/_simulator/call", headers=headers, json={"method": "remove_member",
                      "args": [tenant.ids["team"], uid]})
        assert r.status_code == 400 and "KeyError" in r.json()["error"]
        stats = http.get("/_simulator/stats", headers=headers).json()
        assert stats["users"] == 4 and stats["graph_requests"] == 0
        http.close()
    with Simulator(tenant) as sim:  # off by default
        http = httpx.Client(base_url=sim.url, verify=ssl.create_default_context(cafile=sim.ca_path),
                            trust_env=False)
        assert http.get("/_simulator/stats", headers={"X-Simulator-Control": "x"}).status_code == 403
        http.close()
