"""`syncd test-connection` against the simulator: all good, then one test per failure, each
naming the cause and printing the fix (exit 1), config errors exit 2."""

from __future__ import annotations

import socket

import pytest

# shorter retry waits (the source's test knob): DNS and refused connections are retried
FAST = {"SYNCD_TUNING": "backoff_initial_s=0.02,backoff_max_s=0.1,connect_timeout_s=3,read_timeout_s=5"}


def _run(env, expect: int):
    r = env.cli("test-connection", env=FAST)
    assert r.code == expect, r
    assert "Traceback" not in r.err, r.err
    return r.out


def _failing(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("FAIL")]


def _fixes(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip().startswith("fix:")]


def test_all_checks_pass(env):
    out = _run(env, 0)
    lines = [line for line in out.splitlines() if line.startswith("ok")]
    names = " ".join(lines)
    for check in ("token", "service principal", "Application.Read.All", "User.Read.All", "GroupMember.Read.All"):
        assert check in names, out
    assert "all checks passed" in out


def test_json_lists_every_check(env):
    checks = env.json("test-connection")
    assert all(c["ok"] for c in checks) and len(checks) >= 5


def test_wrong_secret(env):
    env.tenant.rotate_secret()
    out = _run(env, 1)
    assert _failing(out)[0].startswith("FAIL  token") and "AADSTS7000215" in out, out
    assert "secret" in _fixes(out)[0].lower()
    assert "skip" in out  # the checks that need a token are skipped, not failed
    assert "1 of 5 checks passed" not in out and "0 of 5 checks passed, 1 failed" in out


def test_unknown_application(env):
    env.configure(entra={"client_id": "11111111-2222-3333-4444-555555555555"})
    out = _run(env, 1)
    assert "AADSTS700016" in out and _fixes(out), out


def test_unknown_tenant(env):
    env.configure(entra={"tenant_id": "99999999-2222-3333-4444-555555555555"})
    out = _run(env, 1)
    # msal fails on the tenant's OpenID discovery before the token request (where Entra
    # would answer AADSTS90002): the line names the tenant and the fix the setting
    assert _failing(out)[0].startswith("FAIL  token"), out
    assert "AADSTS90002" in out or "99999999-2222-3333-4444-555555555555" in out, out
    assert any("tenant_id" in f for f in _fixes(out)), out


def test_expired_secret(env):
    env.tenant.secret_expired = True
    out = _run(env, 1)
    assert "AADSTS7000222" in out and "expired" in out.lower(), out
    assert _fixes(out)


@pytest.mark.parametrize("permission", ["User.Read.All", "GroupMember.Read.All"])
def test_missing_permission(env, permission):
    env.tenant.permissions.discard(permission)
    out = _run(env, 1)
    failing = _failing(out)
    assert any(permission in line for line in failing), out
    assert any("consent" in f.lower() or permission in f for f in _fixes(out)), out


def test_missing_application_read_all(env):
    env.tenant.permissions.discard("Application.Read.All")
    out = _run(env, 1)
    assert any("Application.Read.All" in line or "service principal" in line for line in _failing(out)), out
    assert _fixes(out)


def test_wrong_service_principal_id(env):
    env.configure(entra={"service_principal_id": "12345678-1234-1234-1234-123456789abc"})
    out = _run(env, 1)
    assert any(line.startswith("FAIL  service principal") for line in _failing(out)), out
    assert any("Object ID" in f or "Enterprise application" in f for f in _fixes(out)), out


def test_untrusted_tls_certificate(env):
    env.configure(entra={"ca_bundle": None})  # the simulator's CA is not trusted any more
    out = _run(env, 1)
    assert "certificate" in out.lower() or "tls" in out.lower(), out
    assert _fixes(out)


def test_dns_failure(env):
    env.configure(entra={"authority_host": "https://login.syncd-test.invalid", "graph_endpoint": "https://graph.syncd-test.invalid"})
    out = _run(env, 1)
    assert _failing(out)[0].startswith("FAIL  token"), out
    assert "syncd-test.invalid" in out and _fixes(out), out


def test_connection_refused(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the with ends: nothing listens there
    env.configure(entra={"authority_host": f"https://127.0.0.1:{port}", "graph_endpoint": f"https://127.0.0.1:{port}"})
    out = _run(env, 1)
    assert _failing(out)[0].startswith("FAIL  token") and _fixes(out), out


def test_config_error_exits_2(env):
    env.config_path.write_text("[entra]\ntenant_id = 'x'\n")
    r = env.cli("test-connection")
    assert r.code == 2 and "entra.client_id" in r.err, r
