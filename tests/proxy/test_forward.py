"""The outbound forward proxy: CONNECT routing by server name, with TLS end to end."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from timkit.core.names import NameTable
from timkit.core.process import free_port
from timkit.core.tls import LocalPKI, client_ssl_context, server_ssl_context
from timkit.proxy.config import ForwardProxyConfig, Unrouted
from timkit.proxy.outbound.forward import BadRequest, ForwardProxy, parse_authority

DOMAIN = "klinikum-nord.tim.test"


@pytest.fixture
async def tls_upstream(tmp_path: Path) -> AsyncIterator[tuple[LocalPKI, int]]:
    """A TLS server for DOMAIN that answers every line with ``echo:<line>``."""
    pki = LocalPKI(tmp_path)
    paths = pki.ensure_server_cert(DOMAIN, [DOMAIN])

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(b"echo:" + line)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ssl_context(paths))
    yield pki, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def _proxy(**overrides: object) -> ForwardProxy:
    config = ForwardProxyConfig.model_validate({"port": 0, **overrides})
    proxy = ForwardProxy(config)
    await proxy.start()
    return proxy


@asynccontextmanager
async def _ask(
    port: int, request: bytes
) -> AsyncIterator[tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]]:
    """Send ``request`` to the proxy; yields the response head and the open streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        yield await reader.readuntil(b"\r\n\r\n"), reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def test_connect_to_a_routed_name_tunnels_tls_end_to_end(
    tls_upstream: tuple[LocalPKI, int],
) -> None:
    pki, upstream_port = tls_upstream
    proxy = await _proxy(routes={DOMAIN: f"127.0.0.1:{upstream_port}"})
    try:
        request = f"CONNECT {DOMAIN}:443 HTTP/1.1\r\nHost: {DOMAIN}:443\r\n\r\n".encode()
        async with _ask(proxy.port, request) as (head, reader, writer):
            assert head.startswith(b"HTTP/1.1 200")
            # TLS inside the tunnel, verifying the upstream's certificate for DOMAIN.
            await writer.start_tls(client_ssl_context(pki.ca_cert_path), server_hostname=DOMAIN)
            writer.write(b"ping\n")
            assert await reader.readline() == b"echo:ping\n"
    finally:
        await proxy.close()


async def test_unrouted_name_is_refused_with_403() -> None:
    proxy = await _proxy(routes={})
    try:
        request = b"CONNECT evil.example.com:443 HTTP/1.1\r\n\r\n"
        async with _ask(proxy.port, request) as (head, reader, _):
            assert head.startswith(b"HTTP/1.1 403")
            assert b"no route to evil.example.com" in await reader.read()
    finally:
        await proxy.close()


async def test_unreachable_upstream_gives_502() -> None:
    proxy = await _proxy(routes={DOMAIN: f"127.0.0.1:{free_port()}"})
    try:
        request = f"CONNECT {DOMAIN}:8448 HTTP/1.1\r\n\r\n".encode()
        async with _ask(proxy.port, request) as (head, _, _):
            assert head.startswith(b"HTTP/1.1 502")
    finally:
        await proxy.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /health HTTP/1.1\r\n\r\n", b"200"),
        (b"GET http://example.org/ HTTP/1.1\r\n\r\n", b"405"),
        (b"CONNECT nohostport HTTP/1.1\r\n\r\n", b"400"),
        (b"garbage\r\n\r\n", b"400"),
    ],
)
async def test_other_requests_get_clear_answers(request_bytes: bytes, status: bytes) -> None:
    proxy = await _proxy()
    try:
        async with _ask(proxy.port, request_bytes) as (head, _, _):
            assert head.split()[1] == status
    finally:
        await proxy.close()


def test_routes_are_matched_case_insensitively_and_direct_mode_passes_through() -> None:
    routed = ForwardProxy(ForwardProxyConfig(routes={"Klinikum-Nord.tim.test": "127.0.0.1:1234"}))
    assert routed.route("klinikum-nord.tim.test", 443) == ("127.0.0.1", 1234)
    assert routed.route("other.tim.test", 443) is None
    direct = ForwardProxy(ForwardProxyConfig(unrouted=Unrouted.DIRECT))
    assert direct.route("matrix.example.org", 8448) == ("matrix.example.org", 8448)


def test_parse_authority() -> None:
    assert parse_authority("Klinikum-Nord.tim.test:443") == ("klinikum-nord.tim.test", 443)
    assert parse_authority("[::1]:8448") == ("::1", 8448)
    for bad in ("host", "host:0", "host:99999", ":443"):
        with pytest.raises(BadRequest):
            parse_authority(bad)


def test_bad_route_is_a_config_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be 'host:port'"):
        ForwardProxyConfig(routes={DOMAIN: "127.0.0.1"})


async def test_routes_file_changes_apply_to_the_next_connect(
    tls_upstream: tuple[LocalPKI, int], tmp_path: Path
) -> None:
    _, upstream_port = tls_upstream
    names = NameTable(tmp_path / "names.json")
    proxy = await _proxy(routes_file=names.path)
    request = f"CONNECT {DOMAIN}:443 HTTP/1.1\r\n\r\n".encode()
    try:
        async with _ask(proxy.port, request) as (head, _, _):
            assert head.startswith(b"HTTP/1.1 403")  # no file yet: unrouted
        names.set(DOMAIN, f"127.0.0.1:{upstream_port}")  # a service joins
        async with _ask(proxy.port, request) as (head, _, _):
            assert head.startswith(b"HTTP/1.1 200")
        names.remove(DOMAIN)  # and leaves again
        async with _ask(proxy.port, request) as (head, _, _):
            assert head.startswith(b"HTTP/1.1 403")
    finally:
        await proxy.close()


def test_routes_file_entries_win_over_static_routes(tmp_path: Path) -> None:
    names = NameTable(tmp_path / "names.json")
    names.set(DOMAIN, "127.0.0.1:2000")
    proxy = ForwardProxy(
        ForwardProxyConfig(
            routes={DOMAIN: "127.0.0.1:1000", "other.tim.test": "127.0.0.1:3000"},
            routes_file=names.path,
        )
    )
    assert proxy.route(DOMAIN, 443) == ("127.0.0.1", 2000)
    assert proxy.route("other.tim.test", 443) == ("127.0.0.1", 3000)
