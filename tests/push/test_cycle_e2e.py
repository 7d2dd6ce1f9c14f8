"""R24/R25 through the real CLI: a cycle (Graph simulator over HTTPS, msal, msgraph-sdk) that then
pushes to real scim2-server applications (`syncd sync --json` in a subprocess)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.push.conftest import TOKEN, AppView, PushEnv, ScimServer

D = "contoso.onmicrosoft.com"


@pytest.fixture
def penv(tmp_path: Path) -> Iterator[PushEnv]:
    yield from PushEnv.running(tmp_path)


def _app(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in report["apps"] if a["name"] == name)


def _pushed(report: dict[str, Any], target: str) -> list[dict[str, Any]]:
    return [e for e in report["entries"] if e.get("target") == target]


def test_users_arrive_deactivation_no_change_and_dry_run(penv: PushEnv, servers: dict[str, ScimServer]) -> None:
    t = penv.tenant
    alice, bob = t.add_user(f"alice@{D}"), t.add_user(f"bob@{D}")
    team = t.add_group("Team")
    t.add_member(team, alice)
    t.add_member(team, bob)
    t.assign(team)
    base = servers["patch"].tenant()
    penv.add_app("split", base)
    view = AppView(base)

    # a dry run first: every request listed, none sent (the application stays empty)
    dry = penv.sync("--dry-run")
    planned = _app(dry, "split")["planned"]
    assert [p["method"] for p in planned].count("POST") == 3  # two users, one group
    assert {e["target"] for e in _pushed(dry, "split")} == {"split"}
    assert view.users() == [] and view.groups() == []

    report = penv.sync()
    assert report["status"] == "succeeded", report["errors"]
    assert {e["target"] for e in report["entries"]} == {"local", "split"}
    users, groups = view.state()
    assert set(users) == {f"alice@{D}", f"bob@{D}"} and users[f"alice@{D}"][3] is True
    assert groups["Team"] == {f"alice@{D}", f"bob@{D}"}
    assert _app(report, "split")["status"] == "succeeded" and _app(report, "split")["requests"] > 0
    # the stored report is the printed one, in the hash chain
    stored = json.loads(penv.cli("report", "latest", "--format", "json").out)
    assert len(_pushed(stored, "split")) == len(_pushed(report, "split")) and stored["apps"] == report["apps"]
    assert penv.cli("audit", "verify").code == 0
    csv = penv.cli("report", "latest", "--format", "csv").out
    assert csv.splitlines()[0].endswith(",target") and ",split" in csv

    # nothing changed: not a single request to the application
    quiet = penv.sync()
    assert quiet["mode"] == "incremental" and _app(quiet, "split")["requests"] == 0 and _pushed(quiet, "split") == []

    # a deactivation in Entra: active=false in the application, never deleted
    t.disable_user(bob)
    report = penv.sync()
    assert ("deactivate", f"bob@{D}") in {(e["action"], e["name"]) for e in _pushed(report, "split")}
    users, groups = view.state()
    assert users[f"bob@{D}"][3] is False and groups["Team"] == {f"alice@{D}"}

    # a dry run with a change to push sends no write either
    t.disable_user(alice)
    dry = penv.sync("--dry-run")
    assert any(p["method"] == "PATCH" for p in _app(dry, "split")["planned"])
    assert view.state()[0][f"alice@{D}"][3] is True
    view.http.close()


def test_refused_token_makes_the_cycle_partial_and_other_apps_go_on(penv: PushEnv, servers: dict[str, ScimServer]) -> None:
    t = penv.tenant
    t.assign(t.add_user(f"alice@{D}"))
    bad, good = servers["patch"].tenant(), servers["bulk"].tenant()
    penv.add_app("broken", bad, token="not-the-token")
    penv.add_app("split", good)
    report = penv.sync(expect=3)
    assert report["status"] == "partial"
    (error,) = [e for e in report["errors"] if e.startswith("broken:")]
    assert "401" in error and "token_file" in error and "broken-token" in error
    assert "not-the-token" not in json.dumps(report) and TOKEN not in json.dumps(report)
    assert _app(report, "broken")["status"] == "failed" and _app(report, "split")["status"] == "succeeded"
    # the local directory is committed all the same, and the other application got its user
    assert set(penv.users()) == {f"alice@{D}"}
    view = AppView(good)
    assert set(view.state()[0]) == {f"alice@{D}"}
    view.http.close()
    result = penv.cli("sync")
    assert result.code == 3 and "Traceback" not in result.err
    assert "broken:" in result.out and "not-the-token" not in result.out + result.err
    assert "app broken: failed" in result.out and "app split: succeeded, 0 request(s)" in result.out
    # the log (the journal, under the daemon) names the failing application and why
    assert "push to broken failed" in result.err and "401" in result.err and "not-the-token" not in result.err


def test_the_daemons_status_line_names_failing_applications() -> None:
    from syncd.daemon import status_line
    from syncd.report.model import CycleReport

    report = CycleReport("c1", "incremental", False, "schedule", "t0", "t1", status="partial",
                         apps=[{"name": "split", "status": "succeeded"}, {"name": "broken", "status": "failed"},
                               {"name": "slow", "status": "partial"}])
    line = status_line(report)
    assert line.endswith("; applications failing: broken (failed), slow (partial)"), line
    assert "applications" not in status_line(CycleReport("c2", "incremental", False, "schedule", "t0", "t1"))


def test_on_demand_cycle_pushes_the_application_in_step(penv: PushEnv, servers: dict[str, ScimServer]) -> None:
    t = penv.tenant
    alice = t.add_user(f"alice@{D}")
    t.assign(alice)
    base = servers["bulk"].tenant()
    penv.add_app("split", base)
    penv.sync()
    carol = t.add_user(f"carol@{D}")
    t.assign(carol)
    report = penv.sync("--user", f"carol@{D}")
    assert report["mode"] == "on_demand"
    assert ("create", f"carol@{D}") in {(e["action"], e["name"]) for e in _pushed(report, "split")}
    view = AppView(base)
    assert set(view.state()[0]) == {f"alice@{D}", f"carol@{D}"}
    view.http.close()


def test_status_shows_each_application(penv: PushEnv, servers: dict[str, ScimServer]) -> None:
    from datetime import UTC, datetime, timedelta

    t = penv.tenant
    t.assign(t.add_user(f"alice@{D}"))
    soon = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    penv.add_app("split", servers["patch"].tenant(), token_expires=soon)
    penv.add_app("broken", servers["patch"].tenant(), token="not-the-token")
    penv.add_app("later", servers["patch"].tenant(), enabled=False)
    penv.sync("--dry-run", expect=3)  # (a dry run records no push)
    st = json.loads(penv.cli("status", "--json").out)
    assert [a["name"] for a in st["apps"]] == ["split", "broken", "later"]
    assert st["apps"][0]["last_push"] is None and st["apps"][0]["pending"] == 0
    report = penv.sync(expect=3)
    result = penv.cli("status", "--json")
    assert result.code == 0, result
    st = json.loads(result.out)
    split, broken, later = st["apps"]
    assert split["last_push"] == {"cycle_id": report["cycle_id"], "status": "succeeded",
                                  "ended_at": split["last_push"]["ended_at"], "requests": _app(report, "split")["requests"]}
    assert split["token_expires"] == soon and any("expires on " + soon in w and "split-token" in w for w in split["warnings"])
    assert broken["last_push"]["status"] == "failed" and any("401" in w for w in broken["warnings"])
    assert later["enabled"] is False and later["last_push"] is None
    assert any(w.startswith("split: the SCIM token expires") for w in st["warnings"])
    text = penv.cli("status").out
    assert "app split: last push succeeded" in text and "app broken: last push failed" in text
    assert "not-the-token" not in text + result.out and TOKEN not in text + result.out


def test_test_connection_checks_each_application(penv: PushEnv, servers: dict[str, ScimServer]) -> None:
    from syncd.net import free_port

    penv.add_app("split", servers["bulk"].tenant())
    ok = penv.cli("test-connection", "--json")
    assert ok.code == 0, ok
    checks = {c["name"]: c for c in json.loads(ok.out)}
    assert checks["SCIM application split: token and ServiceProviderConfig"]["ok"] is True
    assert checks["SCIM application split: filter query"]["ok"] is True
    penv.add_app("broken", servers["patch"].tenant(), token="not-the-token")
    penv.add_app("down", f"http://127.0.0.1:{free_port()}/scim/v2")
    penv.add_app("later", servers["patch"].tenant(), enabled=False)
    result = penv.cli("test-connection")
    assert result.code == 1 and "Traceback" not in result.err
    lines = result.out.splitlines()
    broken = next(i for i, line in enumerate(lines) if line.startswith("FAIL  SCIM application broken"))
    assert "401" in lines[broken] and "broken-token" in lines[broken + 1] and lines[broken + 1].strip().startswith("fix:")
    down = next(i for i, line in enumerate(lines) if line.startswith("FAIL  SCIM application down"))
    assert "cannot connect to down" in lines[down] and "scim.down.base_url" in lines[down + 1]
    assert any(line.startswith("ok    SCIM application split: filter query") for line in lines)
    assert any(line.startswith("skip  SCIM application later") for line in lines)
    assert "not-the-token" not in result.out + result.err and TOKEN not in result.out + result.err


def test_explain_shows_the_user_in_each_application(penv: PushEnv, servers: dict[str, ScimServer]) -> None:
    t = penv.tenant
    alice = t.add_user(f"alice@{D}")
    t.assign(alice)
    penv.add_app("split", servers["patch"].tenant())
    penv.add_app("broken", servers["patch"].tenant(), token="not-the-token")
    penv.sync(expect=3)
    ex = json.loads(penv.cli("explain", f"alice@{D}", "--json").out)
    steps = {s["name"]: s for s in ex["steps"]}
    assert steps["In application split"]["result"] == "yes" and "active there as alice@" in steps["In application split"]["detail"]
    assert "not there yet" in steps["In application broken"]["detail"]
    assert ex["apps"]["split"]["active"] is True
    assert steps["Last action"]["detail"].startswith("create (success)") and "pushed to" not in steps["Last action"]["detail"]
    t.disable_user(alice)
    penv.sync()  # (broken has nothing to do: a deactivated user is never created there)
    text = penv.cli("explain", f"alice@{D}").out
    assert "In application split: deactivated there as alice@" in text


def test_metrics_textfile_per_application(penv: PushEnv, servers: dict[str, ScimServer]) -> None:
    t = penv.tenant
    t.assign(t.add_user(f"alice@{D}"))
    penv.add_app("split", servers["patch"].tenant())
    penv.add_app("broken", servers["patch"].tenant(), token="not-the-token")
    prom = penv.tmp / "syncd.prom"
    penv.configure(metrics={"textfile": str(prom)})
    penv.sync(expect=3)
    m = {}
    for line in prom.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            m[name] = float(value)
    assert m['syncd_app_push_status{app="split",status="succeeded"}'] == 1
    assert m['syncd_app_push_status{app="broken",status="failed"}'] == 1
    assert m['syncd_app_cycle_requests{app="split"}'] > 0 and m['syncd_app_pending{app="split"}'] == 0
    assert m['syncd_app_last_push_timestamp_seconds{app="broken"}'] > 0
    assert "not-the-token" not in prom.read_text()
