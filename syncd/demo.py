"""`syncd demo`: the whole job on the bundled simulated tenant, offline.

It starts the simulator (HTTPS on 127.0.0.1 with a throw-away CA), seeds the local directory
with what an application has before sync is enabled (a local user who is also in Entra, a
local admin, an open invite), runs a first cycle, changes the tenant, runs a second cycle,
and prints both reports. The real msal, msgraph-sdk, planner and store do the work.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from . import config as config_mod
from .cycle import CycleOptions, run_cycle
from .report.render import render_text
from .simulator import Simulator
from .simulator.sample import apply_demo_changes, demo_tenant
from .store import local
from .store.db import Store


def _say(text: str = "", as_json: bool = False) -> None:
    if not as_json:
        click.echo(text)


def run_demo(store_path: str | None, *, as_json: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="syncd-demo-") as tmp:
        keep = store_path is not None
        store = Path(store_path).resolve() if store_path is not None else Path(tmp) / "syncd.db"
        if keep and store.exists():
            raise click.UsageError(f"--store {store} already exists: the demo starts from an empty directory")
        home = store.parent if keep else Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        tenant = demo_tenant()
        with Simulator(tenant) as sim:
            secret = sim.write_secret_file(str(home)) if keep else None
            config_file = (home / f"{store.stem}.toml") if keep else Path(tmp) / "syncd.toml"
            overrides: dict = {"log": {"level": "warning"}}
            if secret:
                overrides["entra"] = {"client_secret_file": secret}
            config_file.write_text(sim.config_toml(str(store), **overrides))
            config_file.chmod(0o600)
            cfg = config_mod.load(str(config_file))

            _say(f"Simulated tenant {tenant.domain} at {sim.url}: {len(tenant.users)} users, {len(tenant.groups)} groups", as_json)
            with Store(str(store)) as s:
                local.add_user(s, "ada.lovelace@contoso.onmicrosoft.com", "Ada (local account)")
                local.add_user(s, "local.admin@example.com", "Local Admin")
                local.change_member(s, "Administrators", "local.admin@example.com", add=True)
                local.add_invite(s, "partner@example.com")
            _say("Local directory before sync: 2 local users (one matches an Entra user), 1 open invite\n", as_json)

            first = run_cycle(cfg, CycleOptions(command="syncd demo"))
            _say("== First cycle (initial, full read) ==", as_json)
            _say(render_text(first) + "\n", as_json)

            _say("== Changes in Entra ID ==", as_json)
            for line in apply_demo_changes(tenant):
                _say(f"  - {line}", as_json)
            _say("", as_json)

            second = run_cycle(cfg, CycleOptions(command="syncd demo"))
            _say("== Second cycle (incremental, delta read) ==", as_json)
            _say(render_text(second) + "\n", as_json)

            with Store(str(store)) as s:
                users = local.list_users(s)
                groups = local.list_groups(s)
            active = sum(1 for u in users if u["status"] == "active")
            _say(f"Local directory now: {active} active users, {len(users) - active} deactivated, {len(groups)} groups", as_json)
            for g in groups:
                _say(f"  {g['name']:<20} {'entra' if g['managed'] else 'local':<6} {len(g['members'])} members", as_json)
            if keep:
                _say(f"\nKept: {store} (explore with: syncd --config {config_file} users list)", as_json)
            if as_json:
                click.echo(json.dumps([first.document(), second.document()], ensure_ascii=False, indent=2))
    return 0 if second.status in ("succeeded", "partial") else 1
