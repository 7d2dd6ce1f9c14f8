"""Security: secrets and tokens never leak, files stay private, tokens go only to Graph,
TLS verification cannot be turned off, and hostile names from Graph stay inert.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import threading
from pathlib import Path

import pytest

from syncd.simulator import Fault
from syncd.simulator import server as sim_server
from tests.safety.conftest import D, SafetyEnv

HOSTILE = {
    "sql": "'; DROP TABLE users; --",
    "shell": "$(touch {canary}) `touch {canary}`",
    "html": "<script>alert('x')</script><img src=x onerror=alert(1)>",
}


def _record_tokens(env: SafetyEnv) -> list[str]:
    """Every access token the simulator issues (revocation forgets them; this list does not)."""
    issued: list[str] = []
    issue = env.sim.tokens.issue

    def recording() -> str:
        token = issue()
        issued.append(token)
        return token

    env.sim.tokens.issue = recording  # type: ignore[method-assign]
    return issued


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def test_no_secret_or_token_in_any_output_log_report_metric_or_store(env: SafetyEnv, tmp_path: Path) -> None:
    t = env.tenant
    issued = _record_tokens(env)
    metrics = tmp_path / "metrics" / "syncd.prom"
    metrics.parent.mkdir()
    env.configure(log={"level": "debug", "format": "json"}, metrics={"textfile": str(metrics)})
    team = t.add_group("Team")
    for i in range(5):
        uid = t.add_user(f"u{i}@{D}")
        t.add_member(team, uid)
    t.assign(team)
    outputs: list[str] = []

    def run(*args: str, code: int | None = 0) -> None:
        result = env.cli(*args)
        if code is not None:
            assert result.code == code, (args, result)
        outputs.extend([result.out, result.err])

    run("check-config")
    run("test-connection", code=None)
    run("sync", "--json")
    # a 401 mid-cycle: the refresh path
    handle = env.sim.graph.handle
    calls = {"n": 0}

    def revoke_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            env.sim.revoke_tokens()
        return handle(*args, **kwargs)

    env.sim.graph.handle = revoke_once  # type: ignore[method-assign]
    t.add_member(team, t.add_user(f"late@{D}"))
    run("sync", "--json", "--full")
    env.sim.graph.handle = handle  # type: ignore[method-assign]
    # failures: a throttled token endpoint, then a refused secret
    env.sim.faults.add(Fault(r"/oauth2/v2\.0/token", "status", status=500, times=-1))
    env.configure(log={"level": "debug", "format": "text"}, metrics={"textfile": str(metrics)},
                  sync={"cycle_timeout_minutes": 0.05})
    run("sync", code=1)
    env.sim.faults.clear()
    old_secret = t.client_secret
    t.rotate_secret()
    run("sync", "--json", code=1)
    run("test-connection", code=1)
    for args in (("status", "--json"), ("status",), ("reports", "--json"), ("users", "list", "--json"),
                 ("groups", "list"), ("report", "latest"), ("audit", "verify")):
        run(*args, code=None)
    for fmt in ("text", "json", "csv", "html"):
        run("report", "latest", "--format", fmt, "-o", str(tmp_path / f"report.{fmt}"))
    assert len(issued) >= 2, "the run should have used at least two tokens"
    needles = {"secret": old_secret, "new secret": t.client_secret, **{f"token {n}": tok for n, tok in enumerate(issued)}}
    haystacks = {f"output {n}": text.encode() for n, text in enumerate(outputs)}
    for path in [*_files_under(env.store_path.parent), *_files_under(tmp_path / "metrics"),
                 *tmp_path.glob("report.*")]:
        haystacks[str(path)] = path.read_bytes()
    assert metrics.exists() and any("report." in k for k in haystacks)
    for where, blob in haystacks.items():
        for what, needle in needles.items():
            assert needle.encode() not in blob, f"{what} found in {where}"
            # tokens are base64url: a prefix long enough to be unique is a leak too
            if what.startswith("token"):
                assert needle[4:28].encode() not in blob, f"part of a {what} found in {where}"


def test_store_and_report_files_are_private(env: SafetyEnv, tmp_path: Path) -> None:
    env.tenant.assign(env.tenant.add_user(f"a@{D}"))
    os.umask(0o022)
    env.sync()
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{env.store_path}{suffix}")
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(env.store_path.parent.stat().st_mode) & 0o077 == 0
    existing = tmp_path / "old-report.html"
    existing.write_text("old")
    existing.chmod(0o644)
    for target in (tmp_path / "new-report.csv", existing):
        result = env.cli("report", "latest", "--format", "html" if target == existing else "csv", "-o", str(target))
        assert result.code == 0, result
        assert stat.S_IMODE(target.stat().st_mode) == 0o600, target


@pytest.mark.parametrize("mode, warns", [(0o644, True), (0o604, True), (0o600, False), (0o400, False)])
def test_a_secret_file_readable_by_others_gets_a_warning(env: SafetyEnv, mode: int, warns: bool) -> None:
    secret_file = Path(env.sim.write_secret_file())
    secret_file.chmod(mode)
    result = env.cli("check-config")
    assert result.code == 0, result
    warned = "readable by other users" in result.err and str(secret_file) in result.err
    assert warned == warns, result.err
    assert env.tenant.client_secret not in result.out + result.err


def test_tokens_go_only_to_the_configured_graph_host(env: SafetyEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nextLink to another host (here: the simulator under another name) is refused.

    The simulator's certificate is valid for both 127.0.0.1 and localhost, so only the
    host check stands between the token and the other host.
    """
    t = env.tenant
    for i in range(6):
        t.assign(t.add_user(f"u{i}@{D}"))
    seen: list[tuple[str, bool]] = []
    lock = threading.Lock()
    dispatch = sim_server._Handler._dispatch

    def recording_dispatch(self) -> None:
        with lock:
            seen.append((self.headers.get("Host", ""), bool(self.headers.get("Authorization"))))
        dispatch(self)

    monkeypatch.setattr(sim_server._Handler, "_dispatch", recording_dispatch)
    handle = env.sim.graph.handle

    def foreign_next_link(*args, **kwargs):
        result = handle(*args, **kwargs)
        if getattr(result, "next_link", None):
            result.next_link = result.next_link.replace("https://127.0.0.1:", "https://localhost:")
        return result

    env.sim.graph.handle = foreign_next_link  # type: ignore[method-assign]
    from tests.safety.conftest import snapshot

    env.cycle(dry_run=True)  # creates the store
    before = snapshot(env.store_path)
    report = env.sync(expect=1)
    assert report["status"] == "failed"
    assert "another host" in " ".join(report["errors"]), report["errors"]
    assert snapshot(env.store_path) == before
    assert not any(host.startswith("localhost") and auth for host, auth in seen), seen


@pytest.mark.parametrize("key", ["verify", "tls_verify", "verify_tls", "ssl_verify", "insecure", "disable_tls_verification"])
def test_no_configuration_key_turns_tls_verification_off(env: SafetyEnv, key: str) -> None:
    env.configure(entra={key: False})
    result = env.cli("check-config")
    assert result.code == 2, result
    assert f"entra.{key}" in result.err, result.err


def test_ca_environment_variables_cannot_override_the_configured_ca_bundle(env: SafetyEnv, tmp_path: Path) -> None:
    env.tenant.assign(env.tenant.add_user(f"a@{D}"))
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    hostile_env = {"REQUESTS_CA_BUNDLE": str(bogus), "CURL_CA_BUNDLE": str(bogus), "SSL_CERT_FILE": str(bogus),
                   "SSL_CERT_DIR": str(tmp_path)}
    result = env.cli("sync", "--json", env=hostile_env)
    assert result.code == 0, result
    assert json.loads(result.out)["status"] == "succeeded"


def test_the_environment_cannot_turn_verification_off_or_add_trust(env: SafetyEnv) -> None:
    """Without entra.ca_bundle the simulator's CA is not trusted, whatever requests/httpx/curl
    variables say. ($SSL_CERT_FILE is OpenSSL's definition of the system store, which syncd
    trusts: it is left alone here.)"""
    env.tenant.assign(env.tenant.add_user(f"a@{D}"))
    env.configure(entra={"ca_bundle": None})
    relaxed = {"PYTHONHTTPSVERIFY": "0", "REQUESTS_CA_BUNDLE": env.sim.ca_path, "CURL_CA_BUNDLE": env.sim.ca_path,
               "HTTPX_SSL_VERIFY": "0", "SSL_CERT_DIR": str(Path(env.sim.ca_path).parent)}
    result = env.cli("sync", "--json", env=relaxed)
    assert result.code == 1, result
    report = json.loads(result.out)
    assert report["status"] == "failed"
    assert "ca_bundle" in " ".join(report["errors"])


def test_hostile_names_from_graph_stay_inert_everywhere(env: SafetyEnv, tmp_path: Path) -> None:
    t = env.tenant
    canary = tmp_path / f"pwned-{secrets.token_hex(4)}"
    names = {k: v.format(canary=canary) for k, v in HOSTILE.items()}
    team = t.add_group("<script>x</script>")  # 18 characters
    sql_group = t.add_group("'; DROP TABLE groups;--")
    ids = {k: t.add_user(f"{k}@{D}", display_name=v) for k, v in names.items()}
    quote = t.add_user(f"o'brien@{D}", display_name='Robert"); DELETE FROM users; --')
    for uid in [*ids.values(), quote]:
        t.add_member(team, uid)
        t.add_member(sql_group, uid)
    t.assign(team)
    t.assign(sql_group)
    report = env.sync()
    assert report["status"] == "succeeded"
    users = env.local_users()
    assert {users[f"{k}@{D}"]["display_name"] for k in names} == set(names.values())
    assert users[f"o'brien@{D}"]["display_name"] == 'Robert"); DELETE FROM users; --'
    groups = env.local_groups()
    assert {"<script>x</script>", "'; DROP TABLE groups;--", "Administrators"} == set(groups)
    assert len(groups["<script>x</script>"]["members"]) == 4
    # local commands take them as plain values
    for args in (("users", "show", f"o'brien@{D}", "--json"), ("groups", "show", "'; DROP TABLE groups;--", "--json"),
                 ("groups", "show", "<script>x</script>"), ("explain", f"shell@{D}")):
        result = env.cli(*args)
        assert result.code == 0, (args, result)
    listing = env.cli("users", "list", "--json")
    assert {u["display_name"] for u in json.loads(listing.out)} >= set(names.values())
    html = env.cli("report", "latest", "--format", "html").out
    assert "<script>alert" not in html and "<img src=x" not in html and "<script>x</script>" not in html
    assert "&lt;script&gt;" in html
    text = env.cli("report", "latest").out
    assert "<script>x</script>" in text  # plain text shows it as text
    csv_out = env.cli("report", "latest", "--format", "csv").out
    assert "DROP TABLE" in csv_out
    # an incremental cycle over the same names, then the store is intact and nothing ran
    t.update_user(ids["sql"], display_name=names["sql"] + " again")
    assert env.sync()["status"] == "succeeded"
    assert not canary.exists(), "a name from Graph was run by a shell"
    assert len(env.local_users()) == 4
