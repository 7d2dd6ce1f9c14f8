"""test-connection's check of an application whose ca_bundle is no PEM file: one failed
check naming the key, not a traceback (the push once built its TLS context on its own)."""

from __future__ import annotations

from pathlib import Path

from syncd.config import ScimApp
from syncd.push.checks import check_app


def test_a_ca_bundle_that_is_no_pem_file_is_a_failed_check_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    app = ScimApp(name="split", base_url="https://127.0.0.1:9/scim/v2", token_file=str(tmp_path / "t"),
                  deactivation_threshold=0, token="t", ca_bundle=str(bad))
    [check] = check_app(app)
    assert check.ok is False and f"scim.split.ca_bundle {bad} holds no PEM certificate" in check.detail
