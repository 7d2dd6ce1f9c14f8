"""`syncd demo`: the whole job on the bundled simulated tenant, offline.

It starts the simulator (HTTPS on 127.0.0.1 with a throw-away CA), seeds the local directory
with what an application has before sync is enabled (a local user who is also in Entra, a
local admin, an open invite), runs a first cycle, changes the tenant, runs a second cycle,
and prints both reports, saying why each cycle ends as it does and which Entra groups were
not provisioned. The real msal, msgraph-sdk, planner and store do the work.

``--store DIR/NAME.db`` keeps the directory, with DIR/NAME.toml and DIR/NAME.secret beside
it; it refuses to start when any of them exists (it never overwrites a file). Local commands
work on the kept store after the simulator is gone (they need neither its CA nor its
secret); `syncd simulator --demo --demo-changes` serves the same tenant again to sync on.

When ``scim2-server`` (a real SCIM 2.0 service provider, installed by ./scripts/setup with the
test extra) is there, the demo also starts it on 127.0.0.1 with a random bearer token, adds it
to the cycle's configuration as the ``[[scim]]`` application ``split-demo``, shows what each
cycle pushed to it, reads its users and groups back at the end, and stops it. A kept
configuration leaves that ``[[scim]]`` table out: the server is gone after the demo. Without
scim2-server the demo says so in one line and runs as before.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from . import config as config_mod
from .config import ScimApp
from .cycle import CycleOptions, run_cycle
from .errors import SyncdError, UsageError
from .net import free_port, wait_listening
from .report.model import CycleReport
from .report.render import render_text
from .simulator import Simulator, Tenant
from .simulator.sample import apply_demo_changes, demo_tenant
from .simulator.tomlwriter import to_toml
from .store import local
from .store.db import Store


def _say(text: str = "", as_json: bool = False) -> None:
    if not as_json:
        click.echo(text)


def kept_files(store: Path) -> dict[str, Path]:
    """What ``--store DIR/NAME.db`` writes: the store (and the files SQLite and the cycle
    lock put beside it), the configuration and the secret."""
    return {
        "store": store,
        "store's write-ahead log": Path(f"{store}-wal"),
        "store's shared memory": Path(f"{store}-shm"),
        "store's lock": Path(f"{store}.lock"),
        "configuration": store.with_suffix(".toml"),
        "secret": store.with_suffix(".secret"),
    }


def _refuse_existing(files: dict[str, Path]) -> None:
    taken = [f"{p} ({what})" for what, p in files.items() if p.exists() or p.is_symlink()]
    if taken:
        raise UsageError(
            f"--store: {', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}: the demo never overwrites "
            "a file and starts from an empty directory; choose another --store NAME or DIR"
        )


def _write_new(path: Path, text: str) -> None:
    """``text`` into a new file, mode 0600; an existing file (a race) is refused, never replaced."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"--store: {path} already exists: the demo never overwrites a file") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)


# the demo's SCIM application: the name its report entries carry ("target") and its [[scim]] table's
APP_NAME = "split-demo"
# names the scim2-server executable (tests point it at nothing to run the demo without it)
SERVER_ENV = "SYNCD_DEMO_SCIM_SERVER"
SKIPPED = (
    "Application part skipped: scim2-server is not installed (a test extra); ./scripts/setup installs it, "
    "then the demo also provisions a real SCIM 2.0 application"
)


@dataclass(frozen=True)
class DemoApp:
    """A scim2-server process the demo provisions; ``token_file`` holds its bearer token (0600)."""

    base_url: str
    token_file: Path

    def scim_table(self) -> str:
        return (
            "\n[[scim]]\n"
            f"name = {json.dumps(APP_NAME)}\n"
            f"base_url = {json.dumps(self.base_url)}\n"
            f"token_file = {json.dumps(str(self.token_file))}\n"
        )


def _server_executable() -> str | None:
    named = os.environ.get(SERVER_ENV)
    if named is not None:
        return shutil.which(named)
    beside = Path(sys.executable).with_name("scim2-server")  # the virtualenv's, as ./scripts/setup installs it
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("scim2-server")


@contextmanager
def scim_application(directory: Path, as_json: bool) -> Iterator[DemoApp | None]:
    """scim2-server on 127.0.0.1 while the block runs (stopped on any exit, Ctrl-C included), or
    None, said in one line, when it is not installed or does not start."""
    exe = _server_executable()
    if exe is None:
        _note(SKIPPED, as_json)
        yield None
        return
    token = secrets.token_hex(24)  # (never starting with "-", which the server's argparse would take for an option)
    token_file = directory / "scim-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    port = free_port()
    # (its own output is its request log: not the demo's)
    process = subprocess.Popen(
        [exe, "--hostname", "127.0.0.1", "--port", str(port), f"--bearer-token={token}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_listening(port, process, 20):
            why = f"exited with {process.returncode}" if process.poll() is not None else "did not listen within 20 s"
            _note(f"Application part skipped: scim2-server {why}", as_json)
            yield None
            return
        yield DemoApp(f"http://127.0.0.1:{port}/v2", token_file)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _note(text: str, as_json: bool) -> None:
    """A line for the operator; with --json on stderr, so stdout stays one JSON document."""
    click.echo(text, err=as_json)


def _pushed(report: CycleReport) -> str:
    """What the cycle pushed to the demo's application, from the report's apps summary and entries."""
    app = next((a for a in report.apps if a["name"] == APP_NAME), None)
    if app is None:
        return f"Application {APP_NAME}: not pushed in this cycle"
    done = Counter(
        (e["action"], e["object_type"]) for e in report.entries if e.get("target") == APP_NAME and e["status"] == "success"
    )
    what = ", ".join(f"{action} {n} {kind}{'s' if n != 1 else ''}" for (action, kind), n in sorted(done.items())) or "no changes"
    return f"Application {APP_NAME}: {app['status']}, {app.get('requests', 0)} request(s): {what}"


def _read_back(app: DemoApp) -> list[str]:
    """The application's users and groups, read from the SCIM server itself (syncd's own
    SCIM client, with a short budget: a demo does not wait for a dead server)."""
    from .push.scim import Options, ScimClient, ScimError

    token = app.token_file.read_text().strip()
    target = ScimApp(name=APP_NAME, base_url=app.base_url, token_file=str(app.token_file), deactivation_threshold=0, token=token)
    try:
        with ScimClient(target, token, Options(timeout_s=10, max_attempts=2, budget_s=30)) as client:
            caps = client.capabilities()
            users = list(client.listing("Users", caps=caps))
            groups = list(client.listing("Groups", caps=caps))
    except (ScimError, SyncdError) as e:
        return [f"Application {APP_NAME} (SCIM at {app.base_url}): could not be read back: {type(e).__name__}"]
    active = sum(1 for u in users if u.get("active", True))
    lines = [f"Application {APP_NAME} (SCIM at {app.base_url}): {len(users)} users ({active} active), {len(groups)} groups"]
    for g in sorted(groups, key=lambda g: str(g.get("displayName", ""))):
        lines.append(f"  {str(g.get('displayName', '')):<20} {len(g.get('members') or [])} members")
    shown = sorted(users, key=lambda u: str(u.get("userName", "")))[:5]
    for u in shown:
        lines.append(f"  {str(u.get('userName', '')):<45} {'active' if u.get('active', True) else 'inactive'}")
    if len(users) > len(shown):
        lines.append(f"  ... and {len(users) - len(shown)} more users")
    return lines


def run_demo(store_path: str | None, *, as_json: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="syncd-demo-") as tmp:
        keep = store_path is not None
        store = Path(store_path).resolve() if store_path is not None else Path(tmp) / "syncd.db"
        files = kept_files(store)
        if keep:
            if store.suffix in (".toml", ".secret"):
                raise UsageError(f"--store {store_path}: name the store's file, e.g. demo.db (its .toml and .secret go beside it)")
            _refuse_existing(files)
            store.parent.mkdir(parents=True, exist_ok=True)
        tenant = demo_tenant()
        with Simulator(tenant) as sim, scim_application(Path(tmp), as_json) as app:
            config_file = files["configuration"] if keep else Path(tmp) / "syncd.toml"
            overrides: dict[str, Any] = {"log": {"level": "warning"}}
            header = ""
            if keep:
                _write_new(files["secret"], tenant.client_secret)
                overrides["entra"] = {"client_secret_file": str(files["secret"])}
                header = (
                    f"# written by `syncd demo --store {store_path}` for a simulated tenant that lived while the demo ran.\n"
                    f"# Local commands work on the kept store: syncd --config {config_file} users list\n"
                    "# To sync it again, serve the same tenant: syncd simulator --demo --demo-changes "
                    f"--store {store} --write-config {store.with_name(store.stem + '-live.toml')}\n"
                    + (f"# The demo's SCIM application {APP_NAME} (scim2-server) stopped with the demo: its [[scim]] table "
                       "is left out.\n" if app else "")
                )
            text = to_toml(sim.config_dict(str(store), **overrides))
            # the cycles' configuration: with the application, in the temporary directory (it dies with the demo)
            cycle_config = Path(tmp) / "syncd.toml"
            cycle_config.write_text(text + (app.scim_table() if app else ""))
            cycle_config.chmod(0o600)
            if keep:
                _write_new(config_file, header + text)
            cfg = config_mod.load(str(cycle_config))

            _say(f"Simulated tenant {tenant.domain} at {sim.url}: {len(tenant.users)} users, {len(tenant.groups)} groups", as_json)
            if app:
                _say(f"SCIM application {APP_NAME} at {app.base_url} (scim2-server, empty): each cycle pushes to it "
                     "after the local commit", as_json)
            with Store(str(store)) as s:
                local.add_user(s, "ada.lovelace@contoso.onmicrosoft.com", "Ada (local account)")
                local.add_user(s, "local.admin@example.com", "Local Admin")
                local.change_member(s, "Administrators", "local.admin@example.com", add=True)
                local.add_invite(s, "partner@example.com")
            _say("Local directory before sync: 2 local users (one matches an Entra user), 1 open invite\n", as_json)

            first = run_cycle(cfg, CycleOptions(command="syncd demo"))
            _say("== First cycle (initial, full read) ==", as_json)
            _say(render_text(first), as_json)
            if app:
                _say("\n" + _pushed(first), as_json)
            _say("\n" + _why(first, cfg.mapping.max_group_name_length) + "\n", as_json)

            _say("== Changes in Entra ID ==", as_json)
            for line in apply_demo_changes(tenant):
                _say(f"  - {line}", as_json)
            _say("", as_json)

            second = run_cycle(cfg, CycleOptions(command="syncd demo"))
            _say("== Second cycle (incremental, delta read) ==", as_json)
            _say(render_text(second), as_json)
            if app:
                _say("\n" + _pushed(second), as_json)
            _say("\n" + _why(second, cfg.mapping.max_group_name_length) + "\n", as_json)

            with Store(str(store), readonly=True) as s:
                users = local.list_users(s)
                groups = local.list_groups(s)
            active = sum(1 for u in users if u["status"] == "active")
            _say(f"Local directory now: {active} active users, {len(users) - active} deactivated, {len(groups)} groups", as_json)
            for g in groups:
                _say(f"  {g['name']:<20} {'entra' if g['managed'] else 'local':<6} {len(g['members'])} members", as_json)
            missing = _not_provisioned(tenant, groups, cfg.mapping.max_group_name_length)
            if missing:
                _say(f"Entra groups not in the local directory ({len(missing)} of {len(tenant.groups)}):", as_json)
                for line in missing:
                    _say(f"  {line}", as_json)
            if app and not as_json:
                _say("", as_json)
                for line in _read_back(app):
                    _say(line, as_json)
            if keep:
                _say(
                    f"\nKept: {store}, its configuration {config_file} and secret {files['secret']}.\n"
                    + (f"(The SCIM application {APP_NAME} stopped with the demo: the kept configuration leaves it out.)\n"
                       if app else "")
                    + f"Explore it (no simulator needed): syncd --config {config_file} users list\n"
                    "  ... status, groups list, reports, report latest --format html -o report.html, explain jane.doe@fabrikam.com\n"
                    "Sync it again against the same simulated tenant, served until Ctrl-C:\n"
                    f"  syncd simulator --demo --demo-changes --store {store} --write-config {store.with_name(store.stem + '-live.toml')}\n"
                    f"  syncd --config {store.with_name(store.stem + '-live.toml')} sync   (in another terminal)",
                    as_json,
                )
            if as_json:
                click.echo(json.dumps([first.document(), second.document()], ensure_ascii=False, indent=2))
    return 0 if second.status in ("succeeded", "partial") else 1


def _why(report: CycleReport, limit: int) -> str:
    """Why the cycle ended as it did, in words, for someone meeting syncd for the first time."""
    if report.status == "succeeded":
        return "Why succeeded: every planned change was applied."
    if report.status == "partial":
        skipped = [e["name"] for e in report.entries if e["action"] == "skip" and e["object_type"] == "group"]
        if skipped:
            names = ", ".join(repr(n) for n in skipped)
            return (
                f"Why partial: the demo tenant's group {names} is longer than mapping.max_group_name_length ({limit}), "
                "on purpose: such a group is skipped with an error (its members are still provisioned), every cycle, "
                "until it is renamed in Entra ID or the limit is raised. Everything else was applied (exit code 3)."
            )
        return "Why partial: some changes failed or were skipped with an error (see the errors above); the rest was applied."
    if report.status == "held":
        return "Why held: changes were held back (see the errors above); the rest was applied."
    return "Why failed: reading Graph failed, so nothing was applied (see the error above)."


def _not_provisioned(tenant: Tenant, local_groups: list[dict[str, Any]], limit: int) -> list[str]:
    """Each Entra group with no local group, and why."""
    linked = {g["entra_id"] for g in local_groups if g["entra_id"]}
    assigned = tenant.assigned()
    out = []
    for gid, group in tenant.groups.items():
        if gid in linked:
            continue
        if assigned.get(gid) == "Group" and len(group.name) > limit:
            why = f"assigned, but its name has {len(group.name)} characters (over {limit}): skipped, members provisioned"
        elif assigned.get(gid) == "Group":
            why = "assigned, but not provisioned (see the report)"
        else:
            parents = [tenant.groups[p].name for p in tenant.groups_of(gid) if assigned.get(p) == "Group"]
            why = (
                f"not assigned to the application; nested in {', '.join(parents)}, whose direct members only count "
                "(sync.group_members = \"transitive\" takes nested members too)"
                if parents else "not assigned to the application (a group unassigned later is removed locally)"
            )
        out.append(f"{group.name:<30} {why}")
    return out
