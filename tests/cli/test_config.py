"""SPEC §2: configuration errors name the key and exit 2, on one line, without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_syncd

GOOD_ENTRA = """[entra]
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-1111-1111-1111-111111111111"
service_principal_id = "22222222-2222-2222-2222-222222222222"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def secret(tmp_path: Path) -> str:
    s = tmp_path / "secret"
    s.write_text("topsecret\n")
    s.chmod(0o600)
    return f'client_secret_file = "{s}"\n'


BAD = {
    "unknown key": (lambda t: GOOD_ENTRA + secret(t) + "colour = 'blue'\n", "entra.colour"),
    "unknown section": (lambda t: GOOD_ENTRA + secret(t) + "[bogus]\nx = 1\n", "bogus"),
    "wrong type": (lambda t: GOOD_ENTRA + secret(t) + "[sync]\ninterval_minutes = 'often'\n", "sync.interval_minutes"),
    "bool for number": (lambda t: GOOD_ENTRA + secret(t) + "[sync]\ndeactivation_threshold = true\n", "sync.deactivation_threshold"),
    "interval zero": (lambda t: GOOD_ENTRA + secret(t) + "[sync]\ninterval_minutes = 0\n", "sync.interval_minutes"),
    "missing tenant": (lambda t: GOOD_ENTRA.replace('tenant_id = "contoso.onmicrosoft.com"\n', "") + secret(t), "entra.tenant_id"),
    "missing client id": (lambda t: GOOD_ENTRA.replace('client_id = "11111111-1111-1111-1111-111111111111"\n', "") + secret(t), "entra.client_id"),
    "two credentials": (lambda t: GOOD_ENTRA + secret(t) + 'client_secret = "x"\n', "entra.client_secret"),
    "no credential": (lambda t: GOOD_ENTRA, "entra.client_secret_file"),
    "unreadable secret file": (lambda t: GOOD_ENTRA + f'client_secret_file = "{t}/nope"\n', "entra.client_secret_file"),
    "bad cloud": (lambda t: GOOD_ENTRA + secret(t) + 'cloud = "mars"\n', "entra.cloud"),
    "http url": (lambda t: GOOD_ENTRA + secret(t) + 'graph_endpoint = "http://graph.example"\n', "entra.graph_endpoint"),
    "not a url": (lambda t: GOOD_ENTRA + secret(t) + 'authority_host = "login"\n', "entra.authority_host"),
    "bad mapping": (lambda t: GOOD_ENTRA + secret(t) + '[mapping]\nemail = "employeeId"\n', "mapping.email"),
    "bad aliases": (lambda t: GOOD_ENTRA + secret(t) + "[mapping]\nadmin_group_aliases = 'Admins'\n", "mapping.admin_group_aliases"),
    "bad scope": (lambda t: GOOD_ENTRA + secret(t) + '[sync]\nscope = "some"\n', "sync.scope"),
    "bad log level": (lambda t: GOOD_ENTRA + secret(t) + '[log]\nlevel = "loud"\n', "log.level"),
    "bad date": (lambda t: GOOD_ENTRA + secret(t) + 'client_secret_expires = "soon"\n', "entra.client_secret_expires"),
    "not toml": (lambda t: "[entra\n", "not valid TOML"),
    "empty secret file": (lambda t: GOOD_ENTRA + f'client_secret_file = "{_empty(t)}"\n', "entra.client_secret_file"),
    "bad certificate": (lambda t: GOOD_ENTRA + f'client_certificate_file = "{_empty(t, "x")}"\n', "entra.client_certificate_file"),
}


def _empty(t: Path, content: str = "") -> Path:
    p = t / "empty"
    p.write_text(content)
    return p


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path, case: str) -> None:
    make, key = BAD[case]
    path = write(tmp_path, make(tmp_path))
    result = run_syncd("check-config", "--config", str(path))
    assert result.code == 2, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert key in lines[0]
    assert "Traceback" not in result.err


def test_missing_config_file_names_the_ways_to_give_one(tmp_path: Path) -> None:
    result = run_syncd("status", "--config", str(tmp_path / "absent.toml"))
    assert result.code == 2
    assert "--config" in result.err and "SYNCD_CONFIG" in result.err


def test_config_found_through_env_and_option_before_or_after_command(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_ENTRA + secret(tmp_path) + f'[store]\npath = "{tmp_path}/s.db"\n')
    for args, env in (
        (["check-config", "--config", str(path)], {}),
        (["--config", str(path), "check-config"], {}),
        (["check-config"], {"SYNCD_CONFIG": str(path)}),
    ):
        result = run_syncd(*args, env=env)
        assert result.code == 0, result
        assert "is valid" in result.out


def test_check_config_never_prints_the_secret(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_ENTRA + secret(tmp_path))
    result = run_syncd("check-config", "--json", "--config", str(path))
    assert result.code == 0
    assert "topsecret" not in result.out + result.err
    assert "client_secret_file" in result.out


def test_inline_secret_warns_and_env_secret_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_ENTRA + 'client_secret = "inline-secret"\n')
    result = run_syncd("check-config", "--config", str(path))
    assert result.code == 0
    assert "warning" in result.err and "client_secret_file" in result.err
    assert "inline-secret" not in result.out + result.err
    path = write(tmp_path, GOOD_ENTRA)
    result = run_syncd("check-config", "--json", "--config", str(path), env={"SYNCD_CLIENT_SECRET": "env-secret"})
    assert result.code == 0, result
    assert "$SYNCD_CLIENT_SECRET" in result.out and "env-secret" not in result.out


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_secret_file_readable_by_others_gets_a_warning(tmp_path: Path, mode: int) -> None:
    s = tmp_path / "secret"
    s.write_text("topsecret\n")
    s.chmod(mode)
    path = write(tmp_path, GOOD_ENTRA + f'client_secret_file = "{s}"\n')
    result = run_syncd("check-config", "--config", str(path))
    assert result.code == 0
    assert "readable by other users" in result.err and oct(mode)[2:] in result.err


def test_clouds_set_hosts_and_overrides_win(tmp_path: Path) -> None:
    import json

    path = write(tmp_path, GOOD_ENTRA + secret(tmp_path) + 'cloud = "usgov"\n')
    resolved = json.loads(run_syncd("check-config", "--json", "--config", str(path)).out)
    assert resolved["entra"]["authority_host"] == "https://login.microsoftonline.us"
    assert resolved["entra"]["graph_endpoint"] == "https://graph.microsoft.us"
    path = write(tmp_path, GOOD_ENTRA + secret(tmp_path) + 'cloud = "china"\ngraph_endpoint = "https://graph.example.test/"\n')
    resolved = json.loads(run_syncd("check-config", "--json", "--config", str(path)).out)
    assert resolved["entra"]["authority_host"] == "https://login.chinacloudapi.cn"
    assert resolved["entra"]["graph_endpoint"] == "https://graph.example.test"


def test_commands_that_do_not_talk_to_graph_work_without_the_secret(tmp_path: Path) -> None:
    """With systemd LoadCredential= the secret exists only while the service runs."""
    path = write(tmp_path, GOOD_ENTRA + f'client_secret_file = "{tmp_path}/absent"\n[store]\npath = "{tmp_path}/s.db"\n')
    assert run_syncd("users", "add", "ada@example.com", "--config", str(path)).code == 0  # (creates the store)
    for args in (["status"], ["users", "list"], ["groups", "list", "--json"], ["reports"]):
        result = run_syncd(*args, "--config", str(path))
        assert result.code == 0, (args, result)
    result = run_syncd("sync", "--config", str(path))
    assert result.code == 2 and "entra.client_secret_file" in result.err


def test_a_key_not_given_takes_its_dataclass_default(tmp_path: Path) -> None:
    """Defaults live in one place, the dataclasses: a configuration naming only what is
    required resolves to exactly them."""
    import dataclasses

    from syncd.config import Config, MappingConfig, ScimApp, SyncConfig, parse

    token = tmp_path / "app.token"
    token.write_text("t\n")
    token.chmod(0o600)
    ids = {"tenant_id": "contoso.example", "client_id": "11111111-1111-4111-8111-111111111111",
           "service_principal_id": "22222222-2222-4222-8222-222222222222", "client_secret": "s"}
    cfg = parse({"entra": ids, "scim": [{"name": "app", "base_url": "https://app.example/scim", "token_file": str(token)}]},
                base_dir=tmp_path)
    assert cfg.sync == SyncConfig() and cfg.mapping == MappingConfig()
    for f in dataclasses.fields(Config):
        if f.default is not dataclasses.MISSING and f.name not in ("path", "warnings", "scim"):
            assert getattr(cfg, f.name) == f.default, f.name
    (app,) = cfg.scim
    for f in dataclasses.fields(ScimApp):
        if f.default is not dataclasses.MISSING and f.name not in ("token", "ca_bundle"):
            assert getattr(app, f.name) == f.default, f.name
    assert app.deactivation_threshold == SyncConfig.deactivation_threshold
