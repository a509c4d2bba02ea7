"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer, postgres_server
from tests.support.slapd import SlapdServer, slapd_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server of the test session's own (fresh cluster, free port)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def slapd() -> Iterator[SlapdServer]:
    """A real OpenLDAP server of the test session's own (VZD schema, free port)."""
    with slapd_server() as server:
        yield server
