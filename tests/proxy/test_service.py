"""The Messenger-Proxy's public listener against slow and odd clients, run by its real
composition root (``running_proxy``) over TLS, with a homeserver and an RD stand-in behind it:
slowloris heads, a stalled ``createRoom`` body (also spelled encoded), a stalled streamed
upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.proxy.stand_ins import FakeRd, FakeSynapse, proxy_config, proxy_keys, sign_list
from tests.support.wait import async_wait_until
from timkit.core.tls import server_ssl_context
from timkit.core.web import running_app
from timkit.proxy.service import RunningProxy, running_proxy

SERVER = "praxis.tim.test"
LIMIT = 0.3
"""Head and body-stall limit of the proxy under test (seconds)."""
CREATE_ROOM = b"/_matrix/client/v3/createRoom"


@dataclass
class Listener:
    proxy: RunningProxy
    synapse: FakeSynapse
    tls: ssl.SSLContext

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A raw TLS connection to the proxy's public port."""
        return await asyncio.open_connection(
            "127.0.0.1", self.proxy.inbound_port, ssl=self.tls, server_hostname=SERVER
        )


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    keys = proxy_keys(tmp_path, SERVER)
    rd = FakeRd()
    rd.jws, rd.version = sign_list(keys.pki, 1, [SERVER]), 1
    synapse = FakeSynapse(SERVER)
    async with (
        running_app(rd.app(), "127.0.0.1", 0, server_ssl_context(keys.rd_tls)) as rd_runner,
        running_app(synapse.app(), "127.0.0.1", 0) as synapse_runner,
    ):
        config = proxy_config(
            keys,
            SERVER,
            f"https://127.0.0.1:{rd_runner.addresses[0][1]}",
            f"http://127.0.0.1:{synapse_runner.addresses[0][1]}",
            inbound={"head_timeout": LIMIT, "body_stall_timeout": LIMIT, "body_timeout": 5.0},
        )
        async with running_proxy(config) as proxy:
            await async_wait_until(lambda: proxy.gate.held is not None, "the first list")
            tls = ssl.create_default_context(cafile=str(keys.pki.ca_cert_path))
            yield Listener(proxy, synapse, tls)


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


async def test_a_slowloris_head_is_cut_off_within_the_limit(listener: Listener) -> None:
    reader, writer = await listener.connect()
    head = b"POST " + CREATE_ROOM + b" HTTP/1.1\r\nHost: " + SERVER.encode() + b"\r\n" * 20
    started = time.monotonic()
    with contextlib.suppress(ConnectionError):
        for byte in head:  # 50 ms per byte: the head would take seconds
            if reader.at_eof():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
    assert await _closed(reader)
    assert time.monotonic() - started < LIMIT + 0.5
    writer.close()


@pytest.mark.parametrize(
    "spelling", [b"/_matrix/client/v3/createRoom", b"/_matrix/client/r0/%63reateRoom"]
)
async def test_a_stalled_create_room_body_is_answered_408_within_the_limit(
    listener: Listener, spelling: bytes
) -> None:
    reader, writer = await listener.connect()
    writer.write(
        b"POST " + spelling + b" HTTP/1.1\r\nHost: " + SERVER.encode() + b"\r\n"
        b"Authorization: Bearer t\r\nContent-Type: application/json\r\n"
        b'Content-Length: 500\r\n\r\n{"invite": ['
    )
    await writer.drain()
    started = time.monotonic()
    status, headers, body = await _answer(reader)
    elapsed = time.monotonic() - started
    assert status == 408
    assert headers["connection"] == "close"
    assert orjson.loads(body) == {
        "errcode": "M_UNKNOWN",
        "error": f"request body stalled: no data for {LIMIT:g} s",
    }
    assert elapsed < LIMIT + 0.5
    assert await _closed(reader)
    writer.close()
    assert listener.synapse.seen == []  # nothing of it was relayed


async def test_a_stalled_streamed_upload_is_ended_within_the_limit(listener: Listener) -> None:
    """A body above the relay's inline limit travels streamed to the homeserver; a stall there
    is ended too (408 to the client, nothing half-sent left waiting)."""
    reader, writer = await listener.connect()
    writer.write(
        b"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: " + SERVER.encode() + b"\r\n"
        b"Authorization: Bearer t\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100_000
    )
    await writer.drain()
    started = time.monotonic()
    status, _, body = await _answer(reader)
    assert status == 408
    assert orjson.loads(body)["error"] == f"request body stalled: no data for {LIMIT:g} s"
    assert time.monotonic() - started < LIMIT + 1.0
    writer.close()


@pytest.mark.parametrize(
    ("body", "errcode", "error"),
    [
        (
            b'{"invite": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
            "M_NOT_JSON",
            "the request body is JSON nested deeper than 1024 levels",
        ),
        (
            b'{"name": "M\xfcller"}',
            "M_NOT_JSON",
            "the request body is not UTF-8 (invalid byte at position 11)",
        ),
        (b"[]", "M_BAD_JSON", "the request body is not a JSON object (it is an array)"),
    ],
)
async def test_an_unusable_create_room_body_is_named_and_not_relayed(
    listener: Listener, body: bytes, errcode: str, error: str
) -> None:
    reader, writer = await listener.connect()
    writer.write(
        b"POST " + CREATE_ROOM + b" HTTP/1.1\r\nHost: " + SERVER.encode() + b"\r\n"
        b"Authorization: Bearer t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    status, _, answer = await _answer(reader)
    writer.close()
    assert status == 400
    assert orjson.loads(answer) == {"errcode": errcode, "error": error}
    assert listener.synapse.seen == []
