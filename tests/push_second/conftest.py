"""A second SCIM service provider, built unlike scim2-server: ``django-scim2-server``.

scim2-server (tests/push) is one in-memory implementation: every attribute of RFC 7643's
schemas, Bulk, ETags, PATCH answered 204. ``django-scim2-server`` 1.1.0 (PyPI, pinned in
pyproject.toml, installed by ./scripts/setup) is a Django app over the ORM (SQLite here),
with its own filter parser and PATCH engine; run by ``djscim.py`` on 127.0.0.1 with a bearer
token. What it does differently, as measured here (test_django_scim.py checks each):

- ServiceProviderConfig: no Bulk (``supported: false``, ``maxOperations: 0``), no ETag, no
  sort, filter with ``maxResults: 200``; listings refuse ``count`` over 1000 (400);
- its User schema (``GET /Schemas``) has userName, name, emails (value, primary), active and
  externalId, and **no displayName**: a displayName sent is dropped, in a POST, a PUT and a
  PATCH alike, without an error, and never returned;
- ids are UUIDs (a path with another id is a 404); PATCH answers **200 with the resource**
  (scim2-server: 204, no body); emails come back without ``type``;
- ``userName`` is unique as sent (case-sensitive: ``Alice@x`` and ``alice@x`` both get
  created), while ``filter=userName eq`` ignores case; Group displayName is not unique;
- members: PATCH add/remove ``members`` with a value list, and ``members[value eq "ID"]``;
  a member that does not exist is ignored; a POSTed group keeps its members;
- DELETE of a user only deactivates it; 401 without ``WWW-Authenticate``.

A test never skips for want of the server: if it is not installed, every test here fails
saying how to install it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.net import free_port, wait_listening
from tests.push.conftest import TOKEN, AppView, PushEnv

HERE = Path(__file__).resolve().parent
NOT_INSTALLED = (
    "django-scim2-server is not installed in {python}: these tests need it (they never skip for it). "
    "Run ./scripts/setup, which installs the test extra of pyproject.toml (django-scim2-server==1.1.0, Django 5.2)."
)


@dataclass
class DjangoScim:
    """One django-scim2-server process; ``reset()`` empties it for the next test."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    _mark: int = field(default=0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/scim/v2"

    def reset(self) -> None:
        r = httpx.post(f"http://127.0.0.1:{self.port}/_test/reset", headers={"Authorization": f"Bearer {TOKEN}"},
                       trust_env=False, timeout=30)
        assert r.status_code == 204, r
        self.mark()

    def mark(self) -> None:
        """From now on, ``requests()`` lists only what comes after."""
        self._mark = self.log.stat().st_size if self.log.exists() else 0

    def requests(self) -> list[str]:
        """``METHOD PATH STATUS`` of every request since the last mark (the test's own reads included)."""
        if not self.log.exists():
            return []
        with self.log.open("rb") as f:
            f.seek(self._mark)
            return f.read().decode().splitlines()


def start(tmp: Path) -> DjangoScim:
    try:
        import django_scim2_server  # noqa: F401  (the server runs in its own process; this only checks)
    except ImportError:
        pytest.fail(NOT_INSTALLED.format(python=sys.executable), pytrace=False)
    port = free_port()
    log, err = tmp / "requests.log", tmp / "server.err"
    with err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "djscim.py"), "--port", str(port), "--db", str(tmp / "scim.db"), "--log", str(log)],
            env={**os.environ, "DJSCIM_TOKEN": TOKEN}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    if wait_listening(port, process, 60):
        return DjangoScim(port, process, log)
    process.kill()
    pytest.fail(f"django-scim2-server did not start (exit {process.poll()}): {err.read_text()[-2000:]}", pytrace=False)


@pytest.fixture(scope="session")
def django_scim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DjangoScim]:
    server = start(tmp_path_factory.mktemp("djscim"))
    yield server
    server.process.terminate()
    server.process.wait(timeout=10)


@pytest.fixture
def djscim(django_scim_process: DjangoScim) -> DjangoScim:
    """The server, empty."""
    django_scim_process.reset()
    return django_scim_process


# --------------------------------------------------------------------------- reading it back


class View(AppView):
    """The application as the test reads it (``tests.push.conftest.AppView``), in pages of
    100 (its ``maxResults`` is 200), and its users as dicts with their ids."""

    page_size = 100

    def state(self) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]]]:
        """Users by lower-cased userName -> {userName, email, active, externalId, id}; groups by
        displayName -> member userNames (lower-cased). A duplicate fails here."""
        users: dict[str, dict[str, Any]] = {}
        name_of: dict[str, str] = {}
        for u in self.users():
            key = u["userName"].lower()
            assert key not in users, f"duplicate user {key}"
            email = next((e["value"] for e in u.get("emails") or [] if e.get("primary")), None)
            users[key] = {"userName": u["userName"], "email": email, "active": u.get("active"),
                          "externalId": u.get("externalId"), "id": u["id"]}
            name_of[u["id"]] = key
        groups: dict[str, set[str]] = {}
        for g in self.groups():
            assert g["displayName"] not in groups, f"duplicate group {g['displayName']}"
            groups[g["displayName"]] = {name_of.get(m["value"], m["value"]) for m in g.get("members") or []}
        return users, groups


# --------------------------------------------------------------------------- the real CLI


@pytest.fixture
def cenv(tmp_path: Path) -> Iterator[PushEnv]:
    yield from PushEnv.running(tmp_path)
