"""Fixtures for the planner tests (the builders live in builders.py)."""

from __future__ import annotations

import pytest

from .builders import Local, Tenant


@pytest.fixture
def tenant() -> Tenant:
    return Tenant()


@pytest.fixture
def local() -> Local:
    return Local()
