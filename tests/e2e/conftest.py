"""End-to-end fixtures: the simulator over HTTPS, the real msal/msgraph-sdk, the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest

from syncd.simulator import Simulator, Tenant
from tests.conftest import Result, run_syncd


@dataclass
class Env:
    tenant: Tenant
    sim: Simulator
    tmp: Path

    @classmethod
    def running(cls, tmp_path: Path, tenant: Tenant | None = None, **sim_kwargs: Any) -> Iterator[Self]:
        """A configured Env on a simulator serving ``tenant`` (by default an empty one)."""
        tenant = tenant or Tenant(domain="contoso.onmicrosoft.com")
        with Simulator(tenant, **sim_kwargs) as sim:
            env = cls(tenant, sim, tmp_path)
            env.configure()
            yield env

    @property
    def store_path(self) -> Path:
        return self.tmp / "state" / "syncd.db"

    @property
    def config_path(self) -> Path:
        return self.tmp / "syncd.toml"

    def configure(self, path: Path | None = None, **overrides: Any) -> Path:
        path = path or self.config_path
        path.write_text(self.sim.config_toml(str(self.store_path), **overrides))
        return path

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        return run_syncd(*args, "--config", str(self.config_path), env=env, timeout=timeout)

    def sync(self, *args: str, expect: int | None = 0) -> dict[str, Any]:
        result = self.cli("sync", "--json", *args)
        assert "Traceback" not in result.err, result.err
        if expect is not None:
            assert result.code == expect, result
        return json.loads(result.out)

    def users(self) -> dict[str, dict[str, Any]]:
        result = self.cli("users", "list", "--json")
        assert result.code == 0, result
        return {u["user_name"]: u for u in json.loads(result.out)}

    def groups(self) -> dict[str, dict[str, Any]]:
        result = self.cli("groups", "list", "--json")
        assert result.code == 0, result
        return {g["name"]: g for g in json.loads(result.out)}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from Env.running(tmp_path)


def entries(report: dict[str, Any], action: str | None = None, object_type: str | None = None) -> list[dict[str, Any]]:
    return [
        e for e in report["entries"]
        if (action is None or e["action"] == action) and (object_type is None or e["object_type"] == object_type)
    ]
