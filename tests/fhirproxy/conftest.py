"""FHIR-Proxy fixtures: a real FHIR-Directory and a real FHIR-Proxy, in-process, on free ports.

``stack`` boots the directory (SQLite, api-vzd examples loaded) and the proxy in front of it
(plain HTTP; TLS is covered end to end in ``tests/e2e``). The directory wants its bearer
token (:data:`DIRECTORY_TOKEN`, in a 0600 file both configs name); the stack's client adds
it to every request to ``directory_url``, and only to those. ``proxy_db_url`` gives storage tests
a fresh proxy database on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.support.postgres import PostgresServer
from timkit.core.process import free_port
from timkit.directory.api import create_app as create_directory_app
from timkit.directory.load import load_files
from timkit.directory.service import open_directory
from timkit.fhirproxy.api.app import create_app
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.config import FhirProxyConfig
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.service import open_context
from timkit.fhirproxy.storage.domains import Domain, DomainStore

EXAMPLES = Path(__file__).parents[1] / "data" / "vzd" / "examples"
DIRECTORY_TOKEN = "directory-token-for-tests-" + "x" * 32
_numbers = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def proxy_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty proxy database URL on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fhir-proxy-{next(_numbers)}.db"
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.create_database(f"fhir_proxy_{next(_numbers)}")


@dataclass
class Stack:
    """A running FHIR-Directory plus FHIR-Proxy.

    Attributes:
        url: the proxy's base URL (also its public base: tokens name it).
        directory_url: the FHIR-Directory's base URL.
        ctx: the proxy's context (stores, token service).
        client: an HTTP client (no base URL; pass full URLs or use :meth:`get` etc.).
    """

    url: str
    directory_url: str
    ctx: FhirProxyContext
    client: httpx.AsyncClient
    secrets: dict[str, str] = field(default_factory=dict)

    def add_provider(self, client_id: str = "provider-a", name: str = "Provider A") -> str:
        """Register a provider; returns its client secret."""
        _, secret = self.ctx.providers.add(client_id, name)
        self.secrets[client_id] = secret
        return secret

    def add_domain(self, domain: str, client_id: str, telematik_id: str) -> None:
        """Register ``domain`` for ``client_id`` straight in the proxy database."""
        with self.ctx.db.write() as tx:
            DomainStore.insert(tx, Domain(domain, telematik_id, tim_anbieter=client_id))

    def token(self, kind: Kind, subject: str, **extra: Any) -> str:
        """An access token of ``kind`` for ``subject``, issued by the proxy's token service."""
        return self.ctx.tokens.issue(kind, subject, extra or None).token

    async def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """``method`` on the proxy's ``path`` with an optional Bearer token."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.request(method, self.url + path, headers=headers, **kwargs)


async def _start(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def write_directory_token(tmp_path: Path, token: str = DIRECTORY_TOKEN) -> Path:
    """``token`` in a fresh file (mode 0600) under ``tmp_path``."""
    path = tmp_path / f"directory-token-{next(_numbers)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return path


async def start_stack(tmp_path: Path, **overrides: Any) -> AsyncIterator[Stack]:
    """Boot directory + proxy with ``overrides`` applied to the proxy config."""
    directory = open_directory(f"sqlite:///{tmp_path}/directory-{next(_numbers)}.db")
    load_files(directory, [EXAMPLES])
    directory_port, proxy_port = free_port(), free_port()
    directory_runner = await _start(
        create_directory_app(directory, token=DIRECTORY_TOKEN), directory_port
    )
    directory_url = f"http://127.0.0.1:{directory_port}"
    url = f"http://127.0.0.1:{proxy_port}"
    settings: dict[str, Any] = {
        "port": proxy_port,
        "base_url": url,
        "upstream": directory_url,
        "upstream_token_file": write_directory_token(tmp_path),
        "database": f"sqlite:///{tmp_path}/fhir-proxy-{next(_numbers)}.db",
        "pki_dir": tmp_path / "pki",
    }
    settings.update(overrides)
    config = FhirProxyConfig.model_validate(settings)
    async with open_context(config) as ctx:
        runner = await _start(create_app(ctx), proxy_port)

        async def directory_token(request: httpx.Request) -> None:
            if str(request.url).startswith(directory_url + "/"):
                request.headers["Authorization"] = f"Bearer {DIRECTORY_TOKEN}"

        hooks = {"request": [directory_token]}
        async with httpx.AsyncClient(timeout=30, event_hooks=hooks) as client:
            try:
                yield Stack(url, directory_url, ctx, client)
            finally:
                await runner.cleanup()
                await directory_runner.cleanup()
                directory.db.close()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Directory (api-vzd examples) + proxy with default settings."""
    async for running in start_stack(tmp_path):
        yield running
