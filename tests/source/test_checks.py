"""``syncd test-connection``: one check per step, each failure with its fix."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from syncd.source import check_connection

from .conftest import FAST, with_secret

NAMES = ["token", "service principal", "Application.Read.All", "User.Read.All", "GroupMember.Read.All"]


def checks(entra):
    return {c.name: c for c in asyncio.run(check_connection(entra, timeout_s=30, tuning=FAST))}


def test_all_good(entra):
    result = checks(entra)
    assert list(result) == NAMES
    assert all(c.ok for c in result.values()), result
    assert "Split (syncd)" in result["service principal"].detail


@pytest.mark.parametrize("permission", ["Application.Read.All", "User.Read.All", "GroupMember.Read.All"])
def test_each_missing_permission_is_named(entra, tenant, permission):
    tenant.permissions.discard(permission)
    result = checks(entra)
    assert result[permission].ok is False
    assert permission in result[permission].fix and "admin consent" in result[permission].fix
    others = [n for n in NAMES[2:] if n != permission]
    assert all(result[n].ok for n in others)


def test_group_member_read_checked_on_members(sim, entra):
    from syncd.simulator import Fault

    sim.faults.add(Fault(path=r"/groups/[^/?]+/members", kind="status", status=403))
    result = checks(entra)
    assert result["GroupMember.Read.All"].ok is False


def test_wrong_service_principal(entra):
    result = checks(dataclasses.replace(entra, service_principal_id=str(uuid.uuid4())))
    assert result["service principal"].ok is False
    assert "Enterprise application" in result["service principal"].fix
    assert result["token"].ok and result["User.Read.All"].ok


def test_refused_secret_skips_the_rest(entra):
    result = checks(with_secret(entra, "wrong-wrong-wrong"))
    assert result["token"].ok is False and "AADSTS7000215" in result["token"].detail
    assert result["token"].fix
    assert all(result[n].ok is None for n in NAMES[1:])


def test_untrusted_certificate(entra):
    result = checks(dataclasses.replace(entra, ca_bundle=None))
    assert result["token"].ok is False and "entra.ca_bundle" in result["token"].fix
