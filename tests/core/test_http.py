"""The client factories against real servers: trust of the local CA only, time-outs, no
environment proxies, and the aiohttp session options the components rely on."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web

from timkit.core.http import aiohttp_session, async_client, sync_client
from timkit.core.tls import LocalPKI, server_ssl_context
from timkit.core.web import json_response, running_app


@dataclass(frozen=True)
class Server:
    """A TLS server of the local CA at ``url``; ``ca`` is that CA's certificate."""

    url: str
    ca: Path


async def _echo(request: web.Request) -> web.Response:
    response = json_response(
        {
            "headers": {str(k): v for k, v in request.headers.items()},
            "cookie": dict(request.cookies),
        }
    )
    response.set_cookie("session", "s1")
    return response


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    pki = LocalPKI(tmp_path / "pki")
    pki.ensure_ca()
    paths = pki.ensure_server_cert("localhost", ["localhost", "127.0.0.1"])
    app = web.Application()
    app.router.add_get("/", _echo)
    async with running_app(app, "127.0.0.1", 0, server_ssl_context(paths)) as runner:
        port = runner.addresses[0][1]
        yield Server(f"https://localhost:{port}/", tmp_path / "pki" / "ca.crt")


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """The certificate of a CA that did not issue the server's certificate."""
    LocalPKI(tmp_path / "other").ensure_ca()
    return tmp_path / "other" / "ca.crt"


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield listener.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    listener.close()
    await listener.wait_closed()


@pytest.fixture
async def env_proxy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[bytes]]:
    """A "proxy" named by every proxy variable of the environment; it records what it got."""
    seen: list[bytes] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(200))
        writer.close()

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield seen
    listener.close()
    await listener.wait_closed()


async def _status_of_each_factory(server: Server) -> list[int]:
    """The status ``GET server.url`` gets through each factory's client trusting its CA."""
    async with async_client(server.ca) as client:
        statuses = [(await client.get(server.url)).status_code]
    with sync_client(server.ca) as blocking:
        statuses.append((await asyncio.to_thread(blocking.get, server.url)).status_code)
    async with aiohttp_session(server.ca) as session, session.get(server.url) as response:
        statuses.append(response.status)
    return statuses


async def test_every_factory_trusts_the_given_local_ca(server: Server) -> None:
    assert await _status_of_each_factory(server) == [200, 200, 200]


async def test_a_server_of_another_ca_is_refused(server: Server, other_ca: Path) -> None:
    async with async_client(other_ca) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(server.url)
    with sync_client(other_ca) as blocking, pytest.raises(httpx.ConnectError):
        await asyncio.to_thread(blocking.get, server.url)
    async with aiohttp_session(other_ca) as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(server.url)


async def test_without_a_ca_only_the_system_store_is_trusted(server: Server) -> None:
    async with async_client() as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(server.url)
    async with aiohttp_session() as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(server.url)


async def test_a_given_tls_context_is_used_and_excludes_ca_cert(server: Server) -> None:
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=server.ca)  # system store plus the local CA
    async with aiohttp_session(tls=context) as session, session.get(server.url) as response:
        assert response.status == 200
    with pytest.raises(ValueError, match="not both"):
        aiohttp_session(server.ca, tls=context)


async def test_environment_proxies_are_ignored(server: Server, env_proxy: list[bytes]) -> None:
    assert await _status_of_each_factory(server) == [200, 200, 200]
    assert env_proxy == []
    # the environment is effective: a client trusting it goes to the "proxy"
    async with httpx.AsyncClient(verify=False, trust_env=True) as trusting:  # noqa: S501
        with pytest.raises(httpx.HTTPError):
            await trusting.get(server.url)
    assert env_proxy
    assert env_proxy[0].startswith(b"CONNECT localhost:")


async def test_time_outs_bound_a_server_that_never_answers(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/"
    async with async_client(timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url)
    with sync_client(timeout=0.3) as blocking, pytest.raises(httpx.ReadTimeout):
        await asyncio.to_thread(blocking.get, url)
    async with aiohttp_session(timeout=0.3) as session:
        with pytest.raises(TimeoutError):
            await session.get(url)


async def test_a_relay_session_adds_no_headers_and_keeps_no_cookies(server: Server) -> None:
    skipped = ("User-Agent", "Accept", "Accept-Encoding")
    async with aiohttp_session(
        server.ca, skip_auto_headers=skipped, cookies=False, decompress=False
    ) as session:
        for _ in range(2):
            async with session.get(server.url) as response:
                seen = await response.json()
        assert not set(seen["headers"]) & set(skipped)
        assert seen["cookie"] == {}
        assert session.auto_decompress is False
    async with aiohttp_session(server.ca) as session:
        for _ in range(2):
            async with session.get(server.url) as response:
                seen = await response.json()
        assert "User-Agent" in seen["headers"]
        assert seen["cookie"] == {"session": "s1"}


async def test_pool_limits_and_http2_reach_the_httpx_transport(server: Server) -> None:
    async with async_client(server.ca, http2=True, max_connections=3) as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 3
        assert pool._http2 is True
        assert (await client.get(server.url)).status_code == 200  # no h2 offered: HTTP/1.1
