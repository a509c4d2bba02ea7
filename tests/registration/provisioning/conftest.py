"""Fixtures of the AF_10060 tests: an RD over a real FHIR stack, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.registration.provisioning.stack import ControlDouble, RdStack, database_url, start_rd


@pytest.fixture(params=["sqlite", "postgresql"])
def rd_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh RD database URL on each engine."""
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return database_url(request.param, tmp_path, postgres)


@pytest.fixture
def control() -> ControlDouble:
    """The control-API double (see ``stack.ControlDouble``)."""
    return ControlDouble()


@pytest.fixture
async def rd(tmp_path: Path, rd_database: str, control: ControlDouble) -> AsyncIterator[RdStack]:
    """RD + FHIR-Proxy + FHIR-Directory + control double."""
    async for stack in start_rd(tmp_path, rd_database, control=control):
        yield stack
