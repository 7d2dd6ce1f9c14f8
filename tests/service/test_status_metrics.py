"""`syncd status` warnings, the Prometheus textfile, and the progress bar of a manual sync."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import re
import select
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from syncd.simulator import Fault


def _assign(env, n: int) -> list[str]:
    ids = [env.tenant.add_user(f"user{i}@contoso.onmicrosoft.com") for i in range(n)]
    for uid in ids:
        env.tenant.assign(uid)
    return ids


def test_status_json_shape_and_secret_expiry(env):
    soon = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    env.configure(entra={"client_secret_expires": soon})
    _assign(env, 2)
    assert env.cli("sync").code == 0
    st = env.json("status")
    for key in ("enabled", "last_cycle", "next_run", "users", "groups", "warnings"):
        assert key in st
    assert st["enabled"] is True and st["last_cycle"]["status"] == "succeeded" and st["next_run"] is None
    assert st["users"] == {"active": 2, "deactivated": 0}
    assert any(f"expires on {soon}" in w for w in st["warnings"]), st["warnings"]


def _pem(tmp_path, days: int):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncd")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days)).sign(key, hashes.SHA256()))
    path = tmp_path / "syncd.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
                     + cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o600)
    return path, cert


def test_status_warns_before_the_certificate_expires(env, tmp_path):
    path, cert = _pem(tmp_path, 12)
    env.configure(entra={"client_secret_file": None, "client_certificate_file": str(path)})
    assert env.cli("users", "add", "x@example.com").code == 0  # (a store, no cycle needed)
    st = env.json("status")
    expected = cert.not_valid_after_utc.date().isoformat()
    assert any(f"client certificate expires on {expected}" in w for w in st["warnings"]), st["warnings"]


def test_status_quiet_for_a_certificate_far_from_expiry(env, tmp_path):
    path, _ = _pem(tmp_path, 365)
    env.configure(entra={"client_secret_file": None, "client_certificate_file": str(path)})
    assert env.cli("users", "add", "x@example.com").code == 0
    assert not any("certificate" in w for w in env.json("status")["warnings"])


def test_status_staged_deactivations_and_held_cycle(env):
    ids = _assign(env, 4)
    env.configure(sync={"deactivation_threshold": 1})
    assert env.cli("sync").code == 0
    for uid in ids[:3]:
        env.tenant.unassign(uid)
    assert env.cli("sync").code == 4
    warnings = env.json("status")["warnings"]
    assert any("3 deactivation(s) staged" in w and "--approve-deactivations" in w for w in warnings), warnings
    assert any(w.startswith("the last cycle held changes back") for w in warnings), warnings


def _metrics(path) -> dict[str, float]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_textfile_after_each_cycle(env, tmp_path):
    prom_dir = tmp_path / "textfile"
    prom_dir.mkdir()
    prom = prom_dir / "syncd.prom"
    env.configure(metrics={"textfile": str(prom)})
    _assign(env, 3)
    assert env.cli("sync").code == 0
    m = _metrics(prom)
    assert m['syncd_cycle_actions{action="create"}'] == 3
    assert m['syncd_cycle_status{status="succeeded"}'] == 1
    assert m["syncd_consecutive_failures"] == 0
    assert m["syncd_last_success_timestamp_seconds"] > 0
    assert m["syncd_cycle_graph_requests"] > 0 and "syncd_cycle_throttled_responses" in m
    assert any(k.startswith("syncd_cycle_duration_seconds{") for k in m)
    # a throttled answer is counted
    env.sim.faults.add(Fault(path=r"/users/delta", kind="status", status=429, retry_after=0.1, times=1))
    assert env.cli("sync").code == 0
    assert _metrics(prom)["syncd_cycle_throttled_responses"] >= 1
    # a mistyped --user fails its own cycle, but is no failure of the service
    r = env.cli("sync", "--user", "nobody@contoso.onmicrosoft.com")
    assert r.code == 1 and "nobody@contoso.onmicrosoft.com" in r.err, r
    assert _metrics(prom)["syncd_consecutive_failures"] == 0
    # failures in a row
    env.tenant.rotate_secret()
    assert env.cli("sync").code == 1
    assert env.cli("sync").code == 1
    m = _metrics(prom)
    assert m["syncd_consecutive_failures"] == 2 and m['syncd_cycle_status{status="failed"}'] == 1
    assert m["syncd_last_success_timestamp_seconds"] > 0
    # an operator's on-demand try that fails is no failure of the service
    r = env.cli("sync", "--user", "nobody@contoso.onmicrosoft.com")
    assert r.code == 1, r
    assert _metrics(prom)["syncd_consecutive_failures"] == 2
    assert os.listdir(prom_dir) == ["syncd.prom"]  # the temporary file was renamed, none left
    assert oct(prom.stat().st_mode & 0o777) == "0o644"


def _sync_on_a_tty(env, *args: str) -> tuple[int, str, str]:
    """stderr on a pseudo-terminal (as an operator's shell), stdout captured."""
    master, slave = pty.openpty()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    child_env.update(COLUMNS="100", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "sync", "--config", str(env.config_path), *args],
                            stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=child_env)
    os.close(slave)
    tty = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            tty += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read().decode()
    code = proc.wait(30)
    os.close(master)
    return code, out, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", tty.decode(errors="replace"))


def test_progress_bar_on_a_terminal_only(env):
    _assign(env, 3)
    env.sim.faults.add(Fault(path=r"/users/delta", kind="slow", delay=1.5, times=1))
    code, out, tty = _sync_on_a_tty(env)
    assert code == 0
    assert "reading users" in tty, tty
    # --json: nothing but the report, no bar, even on a terminal
    code, out, tty = _sync_on_a_tty(env, "--json")
    assert code == 0 and json.loads(out)["status"] == "succeeded"
    assert "reading" not in tty
