"""Reports of real cycles: `syncd sync` against the simulator (HTTPS, msal, msgraph-sdk), then every
format, the listing and `audit verify`, all through the real CLI."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("syncd.source.graph", reason="the Graph source is not in this tree yet")

from syncd.simulator import Simulator, Tenant  # noqa: E402
from tests.e2e.conftest import Env  # noqa: E402
from tests.report.test_formats import check_spec_document  # noqa: E402

D = "contoso.onmicrosoft.com"
EVIL_NAME = "=cmd|' /C calc'!A0 <script>x</script>, \"q\""
EVIL_GROUP = '<b>"Sales", Inc</b>'


@pytest.fixture
def sim_env(tmp_path: Path) -> Iterator[Env]:
    tenant = Tenant(domain=D)
    with Simulator(tenant) as sim:
        e = Env(tenant, sim, tmp_path)
        e.configure()
        yield e


def test_real_cycles_report_in_every_format_and_verify(sim_env: Env) -> None:
    t = sim_env.tenant
    evil = t.add_user(f"evil@{D}", display_name=EVIL_NAME)
    plain = t.add_user(f"plain@{D}", display_name="Plain\nUser")
    g = t.add_group(EVIL_GROUP)
    t.add_member(g, evil)
    t.assign(g)
    t.assign(plain)

    dry = sim_env.sync("--dry-run")
    assert dry["dry_run"] is True
    real = sim_env.sync()
    check_spec_document(real)
    assert real["dry_run"] is False and real["status"] == "succeeded"
    names = {e["name"] for e in real["entries"]}
    assert EVIL_GROUP in names

    # the stored report is what sync printed
    stored = json.loads(sim_env.cli("report", "latest", "--format", "json").out)
    assert stored == real
    listed = json.loads(sim_env.cli("reports", "--json").out)
    assert [r["cycle_id"] for r in listed] == [real["cycle_id"], dry["cycle_id"]]
    assert [r["dry_run"] for r in listed] == [False, True]

    rows = list(csv.DictReader(io.StringIO(sim_env.cli("report", "--format", "csv").out)))
    assert all(not c.startswith(("=", "+", "-", "@")) for r in rows for c in r.values())
    assert any(r["new"] == "'" + EVIL_NAME for r in rows)

    page = sim_env.cli("report", "--format", "html").out
    assert "<script>x</script>" not in page and "&lt;b&gt;&quot;Sales&quot;, Inc&lt;/b&gt;" in page

    t.update_user(plain, display_name="Plain User")
    third = sim_env.sync()
    update = [e for e in third["entries"] if e["action"] == "update"]
    assert [e["modified"]["display_name"] for e in update] == [{"old": "Plain\nUser", "new": "Plain User"}]
    assert update[0]["entra_id"] == plain and isinstance(update[0]["local_id"], int)
    result = sim_env.cli("audit", "verify")
    assert result.code == 0, result
    assert result.out.startswith("audit trail intact: 3 cycles")
