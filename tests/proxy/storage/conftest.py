"""The proxy database on SQLite and on PostgreSQL, freshly migrated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer
from timkit.core.db import Database
from timkit.proxy.storage import open_database


@pytest.fixture(params=["sqlite", "postgresql"])
def proxy_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated proxy database on each engine."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/proxy.db"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.create_database(f"proxy_{uuid.uuid4().hex[:12]}")
    db = open_database(url)
    yield db
    db.close()
