"""SPEC §7 / §2: ``[[scim]]`` tables are validated like the rest; errors name the key, exit 2."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from syncd import config
from syncd.errors import ConfigError
from tests.conftest import run_syncd

ENTRA = {"tenant_id": "t", "client_id": "c", "service_principal_id": "s", "client_secret": "x"}


def _token(tmp_path: Path, text: str = "tok-123\n", mode: int = 0o600) -> str:
    p = tmp_path / "scim-token"
    p.write_text(text)
    p.chmod(mode)
    return str(p)


def _parse(tmp_path: Path, *tables: dict, sync: dict | None = None) -> config.Config:
    data: dict = {"entra": ENTRA, "scim": list(tables)}
    if sync:
        data["sync"] = sync
    return config.parse(data, base_dir=tmp_path)


def test_defaults_and_token(tmp_path: Path) -> None:
    cfg = _parse(tmp_path, {"name": "split", "base_url": "https://scim.example.com/v2/", "token_file": _token(tmp_path)},
                 sync={"deactivation_threshold": 7})
    (app,) = cfg.scim
    assert app.name == "split" and app.base_url == "https://scim.example.com/v2"
    assert app.token == "tok-123"  # the trailing newline is not part of the token
    assert (app.concurrency, app.deactivation_threshold, app.enabled, app.ca_bundle, app.token_expires) == (4, 7, True, None, None)
    assert "tok-123" not in repr(cfg) and "tok-123" not in str(config.describe(cfg))


def test_all_keys(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    cfg = _parse(tmp_path, {
        "name": "a-1", "base_url": "http://[::1]:8080/scim", "token_file": "scim-token", "token_expires": "2027-11-28",
        "ca_bundle": "ca.pem", "concurrency": 8, "deactivation_threshold": 0, "enabled": False,
    } | {"token_file": _token(tmp_path)})
    (app,) = cfg.scim
    assert app.token_expires == date(2027, 11, 28) and app.ca_bundle == str(ca)
    assert (app.concurrency, app.deactivation_threshold, app.enabled) == (8, 0, False)


def test_readable_token_file_warns_and_relative_path(tmp_path: Path) -> None:
    _token(tmp_path, mode=0o644)
    cfg = _parse(tmp_path, {"name": "x", "base_url": "https://h/v2", "token_file": "scim-token"})
    assert cfg.scim[0].token_file == str(tmp_path / "scim-token")
    assert any("scim.x.token_file" in w and "chmod 600" in w for w in cfg.warnings)


def test_token_read_later(tmp_path: Path) -> None:
    data = {"entra": ENTRA, "scim": [{"name": "x", "base_url": "https://h/v2", "token_file": str(tmp_path / "later")}]}
    cfg = config.parse(data, read_credential=False)
    assert cfg.scim[0].token is None
    _token(tmp_path)
    (tmp_path / "scim-token").rename(tmp_path / "later")
    assert cfg.scim[0].read_token() == "tok-123"


BAD = {
    "unknown key": ({"colour": "blue"}, "scim.s.colour"),
    "bad name": ({"name": "Split"}, "scim[0].name"),
    "bad name chars": ({"name": "a_b"}, "scim[0].name"),
    "http remote": ({"base_url": "http://scim.example.com/v2"}, "scim.s.base_url"),
    "ftp": ({"base_url": "ftp://127.0.0.1/v2"}, "scim.s.base_url"),
    "concurrency zero": ({"concurrency": 0}, "scim.s.concurrency"),
    "concurrency type": ({"concurrency": "4"}, "scim.s.concurrency"),
    "threshold bool": ({"deactivation_threshold": True}, "scim.s.deactivation_threshold"),
    "enabled type": ({"enabled": "yes"}, "scim.s.enabled"),
    "bad date": ({"token_expires": "soon"}, "scim.s.token_expires"),
    "missing token file": ({"token_file": "/nonexistent/token"}, "scim.s.token_file"),
    "unreadable ca": ({"ca_bundle": "/nonexistent/ca.pem"}, "scim.s.ca_bundle"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_errors_name_the_key(tmp_path: Path, case: str) -> None:
    change, key = BAD[case]
    table = {"name": "s", "base_url": "https://h/v2", "token_file": _token(tmp_path)} | change
    with pytest.raises(ConfigError) as err:
        _parse(tmp_path, table)
    assert key in str(err.value)


def test_missing_required_and_duplicates_and_shape(tmp_path: Path) -> None:
    tok = _token(tmp_path)
    for missing in ("name", "base_url", "token_file"):
        table = {"name": "s", "base_url": "https://h/v2", "token_file": tok}
        del table[missing]
        with pytest.raises(ConfigError, match=rf"scim(\[0\]|\.s)\.{missing}: missing"):
            _parse(tmp_path, table)
    with pytest.raises(ConfigError, match="unique"):
        _parse(tmp_path, *[{"name": "s", "base_url": "https://h/v2", "token_file": tok}] * 2)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="scim.s.token_file: .* is empty"):
        _parse(tmp_path, {"name": "s", "base_url": "https://h/v2", "token_file": str(empty)})
    with pytest.raises(ConfigError, match="scim"):
        config.parse({"entra": ENTRA, "scim": {"name": "s"}})


def test_cli_exit_2_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[entra]\ntenant_id = "t"\nclient_id = "c"\nservice_principal_id = "s"\nclient_secret = "x"\n'
        f'[[scim]]\nname = "split"\nbase_url = "http://scim.example.com"\ntoken_file = "{_token(tmp_path)}"\n'
    )
    result = run_syncd("check-config", "--config", str(cfg))
    assert result.code == 2 and "scim.split.base_url" in result.err
