"""Directory fixtures: every test using them runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer
from timkit.directory.handlers import Directory
from timkit.directory.load import load_files
from timkit.directory.service import open_directory

EXAMPLES = Path(__file__).parents[1] / "data" / "vzd" / "examples"
_numbers = itertools.count()


def _database_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/directory-{next(_numbers)}.db"
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.create_database(f"directory_{next(_numbers)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def directory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Directory]:
    """An empty directory of its own."""
    opened = open_directory(_database_url(request.param, request, tmp_path))
    yield opened
    opened.db.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def examples(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Directory]:
    """A directory holding the api-vzd examples; shared by a module, so do not write to it."""
    opened = open_directory(_database_url(request.param, request, tmp_path_factory.mktemp("d")))
    load_files(opened, [EXAMPLES])
    yield opened
    opened.db.close()
