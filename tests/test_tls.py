"""syncd.tls: one verifying context per CA bundle, whichever setting names it."""

from __future__ import annotations

from pathlib import Path

import certifi
import pytest

from syncd.errors import TlsFailed
from syncd.tls import ssl_context


def test_one_context_per_bundle_whichever_setting_names_it(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes())
    # Graph and every SCIM application with the same bundle share the parsed store
    assert ssl_context(str(bundle)) is ssl_context(str(bundle), key="scim.split.ca_bundle")
    assert ssl_context(None, key="scim.a.ca_bundle") is ssl_context(None, key="scim.b.ca_bundle")


def test_a_bad_bundle_is_named_by_the_setting_that_asked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    for key in ("entra.ca_bundle", "scim.split.ca_bundle"):
        with pytest.raises(TlsFailed, match=f"^{key} .*holds no PEM certificate") as err:
            ssl_context(str(bad), key=key)
        assert err.value.fix and key in err.value.fix
    with pytest.raises(TlsFailed, match="cannot be read") as err:
        ssl_context(str(tmp_path / "missing.pem"), key="scim.split.ca_bundle")
    assert err.value.fix == "check the path and its permissions"
