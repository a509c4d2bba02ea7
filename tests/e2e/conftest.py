"""Fixtures that boot real processes: Synapse homeservers and timkit components."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.federation import Federation, timkit, write_config


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Two Messenger-Services (praxis-sonnenschein, klinikum-nord) on free ports."""
    directory: Path = tmp_path_factory.mktemp("federation")
    config = write_config(directory, services=2)
    timkit(config, "up")
    try:
        yield Federation(config)
    finally:
        timkit(config, "down", check=False)
