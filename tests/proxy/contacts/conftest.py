"""Freigabeliste fixtures: the API mounted (the ``homeserver`` stand-in is in
``tests/proxy/conftest.py``).

``api`` mounts :func:`timkit.proxy.contacts.api.contacts_app` at ``/tim-contact-mgmt/v1.0.2``
of an outer app exactly as the proxy does, over a real proxy database (SQLite and
PostgreSQL), a real :class:`OpenIdValidator` against ``homeserver`` and a settable clock.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.proxy.conftest import SERVER, Homeserver
from tests.support.postgres import PostgresServer
from timkit.core.db import Database
from timkit.proxy.contacts.api import PREFIX, contacts_app
from timkit.proxy.contacts.handlers import ContactsService
from timkit.proxy.openid import OpenIdValidator
from timkit.proxy.storage import open_database

NOW = 1_700_000_000


@dataclass
class Clock:
    """Unix seconds the test sets."""

    now: float = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def contacts_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated proxy database on each engine."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/proxy.db"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.create_database(f"proxy_api_{uuid.uuid4().hex[:12]}")
    db = open_database(url)
    yield db
    db.close()


@dataclass
class Api:
    """The mounted API: ``client`` talks to the outer app; helpers build auth headers."""

    client: TestClient[web.Request, web.Application]
    service: ContactsService
    homeserver: Homeserver
    clock: Clock

    @staticmethod
    def auth(user: str = "alice", **headers: str) -> dict[str, str]:
        """``Authorization`` with the homeserver's token of ``user``, plus ``headers``."""
        return {"Authorization": f"Bearer {user}-token", **headers}

    @staticmethod
    def url(path: str) -> str:
        return PREFIX + path


MAX_CONTACTS = 5


@pytest.fixture
async def api(contacts_db: Database, homeserver: Homeserver) -> AsyncIterator[Api]:
    clock = Clock()
    service = ContactsService(contacts_db, max_contacts=MAX_CONTACTS, clock=clock)
    validator = OpenIdValidator(homeserver.url, SERVER, cache_seconds=60)
    outer = web.Application()

    async def elsewhere(_request: web.Request) -> web.Response:
        return web.Response(text="outer app")

    # as in the proxy: the sub-app first, then a catch-all forwarding the rest to Synapse
    outer.router.add_get("/_matrix/client/versions", elsewhere)
    outer.add_subapp(PREFIX, contacts_app(service, validator))
    outer.router.add_route("*", "/{tail:.*}", elsewhere)
    client = TestClient(TestServer(outer))
    await client.start_server()
    yield Api(client, service, homeserver, clock)
    await client.close()
    await validator.close()
    service.close()
