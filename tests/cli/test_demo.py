"""`syncd demo` and `syncd simulator` as a new operator meets them: behind a proxy, a kept store
to explore afterwards, files never overwritten, a live tenant to sync on; the set-up script
that runs them offline."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from syncd.tls import proxy_for
from tests.conftest import run_syncd

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A local port nothing listens on: a proxy there refuses every connection."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def dead_proxies() -> dict[str, str]:
    proxy = f"http://127.0.0.1:{closed_port()}"
    return {name: proxy for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")}


def test_the_demo_runs_behind_a_dead_proxy() -> None:
    r = run_syncd("demo", "--json", env=dead_proxies(), timeout=120)
    assert r.code == 0, r
    first, second = json.loads(r.out)
    assert first["status"] == second["status"] == "partial"
    assert first["counts"]["create"] > 30
    # (counts take in the demo's SCIM application too, when scim2-server is there: the local entries only)
    assert sum(1 for e in second["entries"] if e["action"] == "deactivate" and e.get("target", "local") == "local") == 2


def test_loopback_never_goes_through_a_proxy_and_other_hosts_do(monkeypatch) -> None:
    for name, value in dead_proxies().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    for url in ("https://127.0.0.1:8443", "https://127.5.6.7/x", "https://[::1]:9/", "https://localhost:1", "https://a.localhost"):
        assert proxy_for(url) is None, url
    assert proxy_for("https://graph.microsoft.com") == os.environ["HTTPS_PROXY"]
    monkeypatch.setenv("NO_PROXY", "microsoft.com")
    assert proxy_for("https://graph.microsoft.com") is None
    assert proxy_for("https://login.example.net") == os.environ["HTTPS_PROXY"]


def test_the_demo_says_why_its_cycles_are_partial_and_which_groups_it_left_out() -> None:
    r = run_syncd("demo", timeout=120)
    assert r.code == 0, r
    out = r.out
    assert out.count("Why partial:") == 2 and "Marketing-Communications-EMEA" in out
    assert "Entra groups not in the local directory (3 of 7)" in out
    assert "Finance" in out and "not assigned to the application" in out
    assert "Contractors" in out and "nested in Engineering" in out
    assert "phases:" not in out  # timings are for --verbose


def test_a_kept_store_is_explored_after_the_demo_without_its_simulator(tmp_path: Path) -> None:
    d = tmp_path / "kept"
    r = run_syncd("demo", "--store", str(d / "demo.db"), timeout=120)
    assert r.code == 0, r
    config = d / "demo.toml"
    assert {p.name for p in d.iterdir()} >= {"demo.db", "demo.toml", "demo.secret"}
    assert f"syncd --config {config} users list" in r.out and "syncd simulator --demo --demo-changes" in r.out
    for args in (["users", "list"], ["users", "show", "jane.doe@fabrikam.com"], ["groups", "list"], ["groups", "show", "Engineering"],
                 ["invites", "list"], ["status"], ["reports"], ["report", "latest"], ["explain", "jane.doe@fabrikam.com"],
                 ["audit", "verify"], ["report", "--format", "html", "-o", str(tmp_path / "r.html")]):
        res = run_syncd(*args, "--config", str(config))
        assert res.code == 0 and "Traceback" not in res.err, (args, res)
    users = {u["user_name"]: u for u in json.loads(run_syncd("users", "list", "--json", "--config", str(config)).out)}
    assert users["jane.doe@fabrikam.com"]["managed"] and users["shafi.goldwasser@contoso.onmicrosoft.com"]["status"] == "deactivated"
    # the demo's SCIM application stopped with it: the kept configuration leaves its [[scim]] table out
    assert "scim" not in tomllib.loads(config.read_text()) and "split-demo" in config.read_text()
    assert not [p for p in d.iterdir() if "scim" in p.name or "token" in p.name]
    # a cycle needs the tenant, which is gone: a configuration error, in one line
    res = run_syncd("sync", "--config", str(config))
    assert res.code == 2 and res.err.count("\n") == 1 and "entra.ca_bundle" in res.err, res


def test_the_demo_provisions_a_real_scim_application_and_reads_its_users_back(tmp_path: Path) -> None:
    real = Path(sys.executable).with_name("scim2-server")
    if not real.exists():
        pytest.skip("scim2-server is not installed (./scripts/setup installs the test extra)")
    # the demo starts this wrapper, which notes the arguments (the token among them) and runs the real server
    args = tmp_path / "args"
    wrapper = tmp_path / "scim2-server"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {args}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    r = run_syncd("demo", env={"SYNCD_DEMO_SCIM_SERVER": str(wrapper)} | dead_proxies(), timeout=120)
    assert r.code == 0, r
    argv = args.read_text().split("\n")
    token = next(a for a in argv if a.startswith("--bearer-token=")).partition("=")[2]
    assert len(token) >= 20 and token not in r.out and token not in r.err
    assert "skipped" not in r.out.split("== First cycle")[0]
    # after each cycle, what the application received, from the report
    pushed = re.findall(r"^Application split-demo: succeeded, \d+ request\(s\): (.*)$", r.out, re.M)
    assert len(pushed) == 2, r.out
    first = dict((kind, int(n)) for n, kind in re.findall(r"create (\d+) (users|groups)", pushed[0]))
    assert first["users"] > 30 and first["groups"] >= 3, pushed
    assert "deactivate 2 users" in pushed[1] and "create 1 user" in pushed[1], pushed
    # at the end, the application's users and groups as the SCIM server itself lists them
    m = re.search(r"^Application split-demo \(SCIM at http://127\.0\.0\.1:(\d+)/v2\): (\d+) users \((\d+) active\), (\d+) groups$",
                  r.out, re.M)
    assert m, r.out
    port, users, active, groups = map(int, m.groups())
    assert users == first["users"] + 1 and active == users - 2  # the second cycle: one created, two deactivated
    local_groups = int(re.search(r"^Local directory now: .*, (\d+) groups$", r.out, re.M).group(1))
    assert groups == local_groups
    assert "Engineering          15 members" in r.out.split(m.group(0))[1]
    # the server stopped with the demo
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_the_demo_runs_without_scim2_server_and_says_how_to_get_the_application_part() -> None:
    missing = {"SYNCD_DEMO_SCIM_SERVER": "/nonexistent/scim2-server"}
    r = run_syncd("demo", env=missing, timeout=120)
    assert r.code == 0 and "Traceback" not in r.err, r
    skipped = [line for line in r.out.splitlines() if "Application part skipped" in line]
    assert len(skipped) == 1 and "scim2-server" in skipped[0] and "./scripts/setup" in skipped[0], r.out
    assert "split-demo" not in r.out and r.out.count("Why partial:") == 2
    # --json: stdout stays the reports array; the line goes to stderr
    r = run_syncd("demo", "--json", env=missing, timeout=120)
    assert r.code == 0, r
    first, second = json.loads(r.out)
    assert "apps" not in first and "Application part skipped" in r.err and r.err.count("\n") == 1


def test_the_demo_json_carries_the_application_in_the_reports() -> None:
    if not Path(sys.executable).with_name("scim2-server").exists():
        pytest.skip("scim2-server is not installed")
    r = run_syncd("demo", "--json", timeout=120)
    assert r.code == 0 and r.err == "", r
    first, second = json.loads(r.out)
    assert [a["name"] for a in first["apps"]] == ["split-demo"] and first["apps"][0]["status"] == "succeeded"
    assert sum(1 for e in first["entries"] if e.get("target") == "split-demo" and e["object_type"] == "user") > 30


@pytest.mark.parametrize("name", ["demo.db", "demo.toml", "demo.secret", "demo.db-wal", "demo.db.lock"])
def test_the_demo_never_overwrites_a_file(tmp_path: Path, name: str) -> None:
    mine = tmp_path / name
    mine.write_text("mine, not the demo's\n")
    r = run_syncd("demo", "--store", str(tmp_path / "demo.db"), timeout=120)
    assert r.code == 2 and r.err.count("\n") == 1 and str(mine) in r.err and "never overwrites" in r.err, r
    assert mine.read_text() == "mine, not the demo's\n"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_the_simulator_serves_the_demo_tenant_to_go_on_syncing_a_kept_store(tmp_path: Path) -> None:
    assert run_syncd("demo", "--store", str(tmp_path / "demo.db"), timeout=120).code == 0
    live = tmp_path / "live.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")} | dead_proxies()
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "simulator", "--demo", "--demo-changes", "--store", str(tmp_path / "demo.db"),
         "--write-config", str(live)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("https://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else url
        assert oct(live.stat().st_mode)[-3:] == "600"
        r = run_syncd("sync", "--json", "--config", str(live), env=dead_proxies())
        assert r.code == 3, r  # partial: the long group name, and nothing else to do
        doc = json.loads(r.out)
        assert doc["counts"] == {"skip": 1}, doc["counts"]  # the same tenant, the same ids: the store is in step
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # run again, it rewrites its own configuration; never somebody else's
    other = tmp_path / "other.toml"
    other.write_text("[entra]\n")
    r = run_syncd("simulator", "--demo", "--write-config", str(other))
    assert r.code == 2 and "was not written by the simulator" in r.err and other.read_text() == "[entra]\n", r


def test_setup_is_skipped_when_nothing_changed_so_demo_and_tests_run_offline() -> None:
    """The stamp ./scripts/setup left matches, so it neither reaches an index nor builds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | dead_proxies()
    env |= {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/nonexistent"}  # any pip install would fail
    started = time.monotonic()
    r = subprocess.run(["bash", str(ROOT / "scripts" / "setup")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started < 30
    stamp = (ROOT / ".venv" / ".syncd-setup").read_text().split()
    import hashlib

    assert stamp[0] == hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
