"""Fixtures that boot real processes: Synapse homeservers and timkit components."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.registration.browser import browser, shots
from tests.support.federation import Federation, running, write_config
from tests.support.users import A, B, User

__all__ = ["browser", "shots"]  # Chromium fixtures of tests/registration/browser.py


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """Two Messenger-Services (praxis-sonnenschein, klinikum-nord) on free ports."""
    directory: Path = tmp_path_factory.mktemp("federation")
    with running(write_config(directory, services=2)) as federation:
        yield federation


@pytest.fixture
async def http(federation: Federation) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTPS client trusting the federation's local CA."""
    verify = ssl.create_default_context(cafile=federation.ca_cert)
    async with httpx.AsyncClient(verify=verify, timeout=30) as client:
        yield client


@pytest.fixture
async def users(federation: Federation) -> AsyncIterator[dict[str, User]]:
    """Fresh logged-in users (unique localparts): a1 and a2 at A, b1 at B."""
    tag = uuid.uuid4().hex[:6]
    made = {
        "a1": User(federation, A, f"a1-{tag}"),
        "a2": User(federation, A, f"a2-{tag}"),
        "b1": User(federation, B, f"b1-{tag}"),
    }
    await asyncio.gather(*(u.login() for u in made.values()))
    try:
        yield made
    finally:
        await asyncio.gather(*(u.close() for u in made.values()))
