"""SCIM push tests against a real SCIM service provider nobody on this project wrote.

``scim2-server`` (PyPI, 0.8.3; models and validation by ``scim2-models`` 0.12) runs as its own
CLI process on 127.0.0.1 (``scim2-server --port P --bearer-token T --dynamic-tenants``), each
test in a tenant of its own (``/TENANT/v2``). It always validates requests against RFC 7643's
schemas with scim2-models (there is no switch to loosen it). Three processes, three
ServiceProviderConfigs, so every path of the client meets a real server:

- ``bulk``: the defaults: PATCH, Bulk (maxOperations 1000, maxPayloadSize 1 MiB), filter
  (maxResults 1000), sort, ETag;
- ``patch``: PATCH, no Bulk (plain requests ``concurrency`` at a time), filter;
- ``put``: no PATCH (the server answers PATCH with 501), no Bulk: updates are GET + PUT.

What scim2-server does, as measured here (tests/push/test_scim_server.py checks each):

- userName is unique ignoring case: a second ``alice@x`` / ``ALICE@x`` is a 409
  ``scimType: uniqueness``; ``filter=userName eq "ALICE@x"`` finds ``alice@x`` (caseExact false);
- Group ``displayName`` is **not** unique (``Team`` and ``team`` both get created), and
  ``externalId`` neither (and its filter is case-exact): only syncd's own look-up (R22)
  keeps a group from being created twice;
- a Group's ``members`` may name ids that do not exist (no referential check);
- PATCH: replace/add/remove, ``members[value eq "ID"]`` paths; answers 204 without a body;
  adding a member already there changes nothing (the version stays);
- unknown attributes are refused (400 invalidSyntax), two primary emails too (400
  invalidValue); a string ``"yes"`` for ``active`` is coerced to true;
- Bulk: POST/PUT/PATCH/DELETE, ``bulkId:`` references in data and paths, ``failOnErrors``;
  a success carries ``location`` and ``version`` but no body; errors come per operation;
- pagination: 1-based ``startIndex``/``count``, ``count`` cut to maxResults (1000);
  ``excludedAttributes=members`` works on listings;
- ETags: weak versions ``W/"n"``; a stale ``If-Match`` is a 412;
- a wrong token is a 401 with ``WWW-Authenticate: Bearer realm="SCIM"``;
- filters scan every resource (FIELD-NOTES: 0.09 s at 2k users, 0.22 s at 10k).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.config import ScimApp
from syncd.model import ADMIN_GROUP, Directory, LocalGroup, LocalUser
from syncd.net import free_port, wait_listening
from syncd.push.scim import Options
from syncd.store.db import Store
from tests.e2e.conftest import Env as CliEnv
from tests.push.proxy import FaultProxy

# (a push run as its own process, test_kill.py, is handed the token of the servers it talks to)
TOKEN = os.environ.get("SYNCD_TEST_SCIM_TOKEN") or "scim-test-token-" + secrets.token_hex(12)
FLAVOURS = ("bulk", "patch", "put")
FAST = Options(timeout_s=3.0, connect_timeout_s=2.0, max_attempts=5, backoff_base_s=0.02, backoff_max_s=0.2,
               budget_s=60.0, page_size=50)


def _spc(flavour: str) -> dict[str, Any]:
    bulk = flavour.startswith("bulk")
    max_operations = int(flavour[4:] or 1000) if bulk else 0  # "bulk50": Bulk of 50 operations at most
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": flavour != "put"},
        "bulk": {"supported": bulk, "maxOperations": max_operations, "maxPayloadSize": 1048576 if bulk else 0},
        "filter": {"supported": True, "maxResults": 1000},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
    }


@dataclass
class ScimServer:
    flavour: str
    port: int
    process: subprocess.Popen[bytes]
    _tenants: Iterator[int] = field(default_factory=itertools.count)

    def tenant(self) -> str:
        """A new, empty tenant's base URL."""
        return f"http://127.0.0.1:{self.port}/t{os.getpid()}x{next(self._tenants)}x{secrets.token_hex(3)}/v2"


def start_server(flavour: str, tmp: Path) -> ScimServer:
    spc = tmp / f"spc-{flavour}.json"
    spc.write_text(json.dumps(_spc(flavour)))
    port = free_port()
    exe = Path(sys.executable).with_name("scim2-server")
    process = subprocess.Popen(
        [str(exe), "--port", str(port), "--bearer-token", TOKEN, "--dynamic-tenants",
         "--service-provider-config", str(spc)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    if wait_listening(port, process, 30):
        return ScimServer(flavour, port, process)
    if process.poll() is not None:
        raise RuntimeError(f"scim2-server ({flavour}) exited with {process.returncode}")
    process.kill()
    raise RuntimeError("scim2-server did not start")


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ScimServer]]:
    tmp = tmp_path_factory.mktemp("scim")
    started = {f: start_server(f, tmp) for f in FLAVOURS}
    yield started
    for s in started.values():
        s.process.terminate()
        s.process.wait(timeout=10)


@pytest.fixture(params=FLAVOURS)
def server(request: pytest.FixtureRequest, servers: dict[str, ScimServer]) -> ScimServer:
    return servers[request.param]


@pytest.fixture
def bulk_server(servers: dict[str, ScimServer]) -> ScimServer:
    return servers["bulk"]


@pytest.fixture
def patch_server(servers: dict[str, ScimServer]) -> ScimServer:
    return servers["patch"]


# --------------------------------------------------------------------------- the local side


class World:
    """A local directory, as the cycle would hand it to the push (managed objects mostly)."""

    def __init__(self) -> None:
        self.users: dict[int, LocalUser] = {}
        self.groups: dict[int, LocalGroup] = {1: LocalGroup(1, None, ADMIN_GROUP, False)}
        self.members: dict[int, set[int]] = {}
        self._ids = itertools.count(100)

    def user(self, name: str, *, display: str | None = None, active: bool = True, managed: bool = True) -> int:
        uid = next(self._ids)
        self.users[uid] = LocalUser(uid, f"entra-u-{uid}" if managed else None, name, display or name.split("@")[0].title(),
                                    name.lower(), "active" if active else "deactivated", managed)
        return uid

    def set(self, uid: int, **changes: Any) -> None:
        self.users[uid] = self.users[uid]._replace(**changes)

    def deactivate(self, uid: int) -> None:
        self.set(uid, status="deactivated")
        for members in self.members.values():
            members.discard(uid)  # R11: a deactivated user leaves its groups

    def group(self, name: str, *members: int, managed: bool = True) -> int:
        gid = next(self._ids)
        self.groups[gid] = LocalGroup(gid, f"entra-g-{gid}" if managed else None, name, managed)
        self.members[gid] = set(members)
        return gid

    def admins(self, *members: int) -> int:
        """Administrators becomes managed (an admin alias in scope, R8) with these members."""
        self.groups[1] = LocalGroup(1, "entra-admins", ADMIN_GROUP, True)
        self.members[1] = set(members)
        return 1

    def rename(self, gid: int, name: str) -> None:
        g = self.groups[gid]
        self.groups[gid] = LocalGroup(g.id, g.entra_id, name, g.managed)

    def remove_group(self, gid: int) -> None:
        del self.groups[gid]
        self.members.pop(gid, None)

    def directory(self) -> Directory:
        return Directory(users=dict(self.users), groups=dict(self.groups),
                         members={g: set(m) for g, m in self.members.items()}, enabled=True)

    def expected(self) -> tuple[dict[str, tuple], dict[str, set[str]]]:
        """What the application should hold: users by userName, groups by displayName -> member userNames."""
        users = {u.user_name.lower(): (u.user_name, u.display_name, u.email, u.status == "active", u.entra_id)
                 for u in self.users.values() if u.managed}
        groups = {}
        for g in self.groups.values():
            if g.managed:
                groups[g.name] = {self.users[m].user_name.lower() for m in self.members.get(g.id, ())
                                  if self.users[m].managed and self.users[m].status == "active"}
        return users, groups


# --------------------------------------------------------------------------- the application side


class AppView:
    """The application as a test reads it: its own plain httpx, not syncd's client."""

    page_size = 1000

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url + "/", headers={"Authorization": f"Bearer {TOKEN}"},
                                 trust_env=False, timeout=30)

    def close(self) -> None:
        self.http.close()

    def _all(self, resource: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        start = 1
        while True:
            r = self.http.get(resource, params={"startIndex": start, "count": self.page_size})
            r.raise_for_status()
            page = r.json()
            items = page.get("Resources") or []
            out += items
            start += len(items)
            if not items or start > page["totalResults"]:
                return out

    def users(self) -> list[dict[str, Any]]:
        return self._all("Users")

    def groups(self) -> list[dict[str, Any]]:
        return self._all("Groups")

    def post(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        schema = "User" if resource == "Users" else "Group"
        r = self.http.post(resource, json={"schemas": [f"urn:ietf:params:scim:schemas:core:2.0:{schema}"], **body})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def patch(self, path: str, *operations: dict[str, Any]) -> dict[str, Any]:
        r = self.http.patch(path, json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                        "Operations": list(operations)})
        r.raise_for_status()
        return dict(r.json()) if r.content else {}

    def edit(self, path: str, **changes: Any) -> None:
        """A change by hand: read, change, PUT back (every configuration serves PUT)."""
        current = self.http.get(path).json()
        body = {k: v for k, v in current.items() if k not in ("id", "meta")} | changes
        self.http.put(path, json=body).raise_for_status()

    def state(self) -> tuple[dict[str, tuple], dict[str, set[str]]]:
        """Users by lower userName -> (userName, displayName, email, active, externalId); groups by
        displayName -> member userNames (lower). Duplicates fail here."""
        users: dict[str, tuple] = {}
        by_id = {}
        for u in self.users():
            key = u["userName"].lower()
            assert key not in users, f"duplicate user {key}"
            email = next((e["value"] for e in u.get("emails", []) if e.get("primary")), None)
            users[key] = (u["userName"], u.get("displayName"), email, u.get("active", False), u.get("externalId"))
            by_id[u["id"]] = key
        groups: dict[str, set[str]] = {}
        for g in self.groups():
            assert g["displayName"] not in groups, f"duplicate group {g['displayName']}"
            groups[g["displayName"]] = {by_id.get(m["value"], m["value"]) for m in g.get("members", [])}
        return users, groups


def assert_in_step(world: World, view: AppView, *, extra_users: set[str] = frozenset(), extra_groups: set[str] = frozenset()) -> None:
    """The application holds exactly what the directory's managed objects say (plus named unmanaged ones)."""
    want_users, want_groups = world.expected()
    users, groups = view.state()
    # users never created while deactivated: compare those that exist or should
    for key, want in want_users.items():
        if want[3]:
            assert users.get(key) == want, key
        elif key in users:
            assert users[key] == want, key
    assert set(users) - set(want_users) <= set(extra_users)
    for name, members in want_groups.items():
        assert groups.get(name) is not None, f"group {name} missing"
        assert {m for m in groups[name] if m in want_users} == members, name
    assert set(groups) - set(want_groups) <= set(extra_groups), set(groups) - set(want_groups)


@dataclass
class Env:
    """One test's application (a fresh tenant), store and directory."""

    server: ScimServer
    base_url: str
    store: Store
    world: World
    view: AppView
    tmp: Path
    token_file: Path
    proxy: FaultProxy | None = None
    cycles: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def app(self, **kw: Any) -> ScimApp:
        base = self.proxy.url(self.base_url.split(f":{self.server.port}", 1)[1]) if self.proxy else self.base_url
        fields = {"name": "split", "base_url": base, "token_file": str(self.token_file), "deactivation_threshold": 0,
                  "token": TOKEN, "concurrency": 4} | kw
        return ScimApp(**fields)

    def push(self, *, app: ScimApp | None = None, options: Options = FAST, **kw: Any):
        from syncd.push.engine import push_application

        return push_application(app or self.app(), self.store.conn, self.world.directory(),
                                cycle_id=f"c{next(self.cycles)}", options=options, **kw)

    def with_proxy(self) -> FaultProxy:
        self.proxy = FaultProxy(f"http://127.0.0.1:{self.server.port}")
        return self.proxy


def make_env(server: ScimServer, tmp_path: Path) -> Iterator[Env]:
    token_file = tmp_path / "scim-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    store = Store(str(tmp_path / "syncd.db"))
    base = server.tenant()
    env = Env(server, base, store, World(), AppView(base), tmp_path, token_file)
    try:
        yield env
    finally:
        if env.proxy:
            env.proxy.close()
        env.view.http.close()
        store.close()


@pytest.fixture
def env(server: ScimServer, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(server, tmp_path)


@pytest.fixture
def bulk_env(bulk_server: ScimServer, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(bulk_server, tmp_path)


@pytest.fixture
def patch_env(patch_server: ScimServer, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(patch_server, tmp_path)


# --------------------------------------------------------------------------- the real CLI


class PushEnv(CliEnv):
    """The e2e Env with ``[[scim]]`` applications appended to its configuration."""

    apps: list[dict[str, Any]]

    def configure(self, path: Path | None = None, **overrides: Any) -> Path:
        path = super().configure(path, **overrides)
        tables = []
        for app in getattr(self, "apps", []):
            tables.append("\n[[scim]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in app.items()))
        path.write_text(path.read_text() + "".join(tables))
        return path

    def add_app(self, name: str, base_url: str, token: str = TOKEN, **keys: Any) -> Path:
        token_file = self.tmp / f"{name}-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        self.apps = [*getattr(self, "apps", []), {"name": name, "base_url": base_url, "token_file": str(token_file), **keys}]
        return self.configure()
