"""The relay's HTTP/1.1 upstream client (:mod:`timkit.proxy.upstream`) against a scripted
raw server: framing (length, chunked, until close, no body), keep-alive reuse, connections the
upstream closes, interim responses and streamed request bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.wait import async_wait_until
from timkit.proxy.upstream import Pool, UpstreamUnavailable, request_head

Script = Callable[[int, bytes, bytes], bytes | None]
"""(request index, request head, request body) → the raw answer; None closes silently."""


@dataclass
class RawServer:
    """Reads HTTP/1.1 requests (``Content-Length`` or chunked bodies) and answers each with
    what ``script`` returns; counts connections and records requests."""

    script: Script
    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    close_after: set[int] = field(default_factory=set)
    """Request indexes after whose answer the server closes the connection."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                    return
                body = await _read_body(reader, head)
                index = len(self.requests)
                self.requests.append((head, body))
                answer = self.script(index, head, body)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if index in self.close_after:
                    return
        finally:
            writer.close()


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return body
            body += data[:-2]
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return await reader.readexactly(int(line.split(b":")[1]))
    return b""


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[RawServer], asyncio.Future[Pool]]]:
    servers: list[asyncio.Server] = []
    pools: list[Pool] = []

    async def start(raw: RawServer) -> Pool:
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        pool = Pool(f"http://127.0.0.1:{port}", limit=4, connect_timeout=2)
        pools.append(pool)
        return pool

    yield start  # type: ignore[misc]
    for pool in pools:
        await pool.close()
    for server in servers:
        server.close()
        await server.wait_closed()


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%b\r\n%b" % (len(body), extra, body)


def _chunked(*chunks: bytes, trailer: bytes = b"") -> bytes:
    encoded = b"".join(b"%x;ext=1\r\n%b\r\n" % (len(c), c) for c in chunks)
    return (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + encoded
        + b"0\r\n"
        + trailer
        + b"\r\n"
    )


async def _get(pool: Pool, method: bytes = b"GET", body: bytes = b"") -> tuple[int, bytes]:
    framing = b"Content-Length: %d\r\n" % len(body) if body else b""
    async with pool.exchange() as x:
        head = await x.send(
            method, request_head(method, b"/p?q=1", [(b"Host", b"h")], framing), body
        )
        data = b""
        while piece := await x.read():
            data += piece
        return head.status, data


async def test_chunked_responses_are_decoded_and_the_connection_reused(serve: Any) -> None:
    big = bytes(range(256)) * 1000  # larger than one read
    raw = RawServer(lambda i, _h, _b: _chunked(b"ab", big, trailer=b"X-T: 1\r\n"))
    pool = await serve(raw)
    assert await _get(pool) == (200, b"ab" + big)
    assert await _get(pool) == (200, b"ab" + big)
    assert raw.connections == 1


async def test_request_head_and_body_arrive_byte_identical(serve: Any) -> None:
    raw = RawServer(lambda i, _h, b: _ok(b))
    pool = await serve(raw)
    assert await _get(pool, b"PUT", b'{"a":"\xc3\xbc"}') == (200, b'{"a":"\xc3\xbc"}')
    head, body = raw.requests[0]
    assert head == b"PUT /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"
    assert body == b'{"a":"\xc3\xbc"}'


async def test_long_bodies_with_a_length_are_read_in_pieces(serve: Any) -> None:
    big = b"y" * 300_000
    raw = RawServer(lambda i, _h, _b: _ok(big))
    pool = await serve(raw)
    async with pool.exchange() as x:
        await x.send(b"GET", request_head(b"GET", b"/", []))
        assert x.content_length == len(big)
        pieces = []
        while piece := await x.read():
            pieces.append(piece)
    assert b"".join(pieces) == big
    assert len(pieces) > 1
    assert await _get(pool) == (200, big)
    assert raw.connections == 1


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
        (b"GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        (b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"),
    ],
)
async def test_responses_without_a_body_leave_the_connection_usable(
    serve: Any, method: bytes, answer: bytes
) -> None:
    raw = RawServer(lambda i, _h, _b: answer if i == 0 else _ok(b"next"))
    pool = await serve(raw)
    status, body = await _get(pool, method)
    assert body == b""
    assert status in (200, 204, 304)
    assert await _get(pool) == (200, b"next")
    assert raw.connections == 1


async def test_interim_responses_are_skipped(serve: Any) -> None:
    raw = RawServer(lambda i, _h, _b: b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"done"))
    pool = await serve(raw)
    assert await _get(pool, b"POST", b"x") == (200, b"done")


async def test_a_body_until_close_or_connection_close_is_not_reused(serve: Any) -> None:
    answers = [
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        _ok(b"closing", b"Connection: close\r\n"),
        _ok(b"third"),
    ]
    raw = RawServer(lambda i, _h, _b: answers[i], close_after={0, 1})
    pool = await serve(raw)
    assert await _get(pool) == (200, b"until the end")
    assert await _get(pool) == (200, b"closing")
    assert await _get(pool) == (200, b"third")
    assert raw.connections == 3


async def test_an_idempotent_request_is_sent_again_when_a_pooled_connection_was_dropped(
    serve: Any,
) -> None:
    # request 1 arrives on the pooled connection, which the upstream closes without answer
    raw = RawServer(lambda i, _h, _b: None if i == 1 else _ok(b"%d" % i))
    pool = await serve(raw)
    assert await _get(pool) == (200, b"0")
    assert await _get(pool, b"PUT", b"again") == (200, b"2")
    assert raw.connections == 2
    assert raw.requests[1][1] == raw.requests[2][1] == b"again"


async def test_a_post_is_not_sent_twice(serve: Any) -> None:
    raw = RawServer(lambda i, _h, _b: None if i == 1 else _ok(b"%d" % i))
    pool = await serve(raw)
    assert await _get(pool) == (200, b"0")
    with pytest.raises(UpstreamUnavailable, match="before answering"):
        await _get(pool, b"POST", b"once")
    assert len(raw.requests) == 2
    assert await _get(pool) == (200, b"2")  # the broken connection was dropped


async def test_idle_connections_closed_by_the_upstream_are_not_used(serve: Any) -> None:
    raw = RawServer(lambda i, _h, _b: _ok(b"%d" % i), close_after={0})
    pool = await serve(raw)
    assert await _get(pool) == (200, b"0")
    await async_wait_until(
        lambda: all(c.reader.at_eof() for c in pool._idle),
        "the upstream's FIN to reach the idle pooled connection",
        timeout=5,
    )
    assert await _get(pool, b"POST", b"x") == (200, b"1")
    assert raw.connections == 2


async def test_a_response_cut_short_is_an_error_and_the_connection_dropped(serve: Any) -> None:
    raw = RawServer(
        lambda i, _h, _b: (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort" if i == 0 else _ok(b"ok")
        ),
        close_after={0},
    )
    pool = await serve(raw)
    with pytest.raises(UpstreamUnavailable, match="inside the body"):
        await _get(pool)
    assert await _get(pool) == (200, b"ok")


@pytest.mark.parametrize(
    "answer",
    [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", _chunked()[:-5] + b"zz\r\n\r\n"],
)
async def test_malformed_answers_are_errors(serve: Any, answer: bytes) -> None:
    raw = RawServer(lambda i, _h, _b: answer, close_after={0})
    pool = await serve(raw)
    with pytest.raises(UpstreamUnavailable):
        await _get(pool)


async def test_streamed_bodies_go_out_chunked_or_with_their_length(serve: Any) -> None:
    raw = RawServer(lambda i, _h, b: _ok(b"%d" % len(b)))
    pool = await serve(raw)

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([65 + i]) * 100_000
            await asyncio.sleep(0)

    for chunked in (True, False):
        framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: 500000\r\n"
        async with pool.exchange() as x:
            head = await x.send_streamed(
                b"PUT", request_head(b"PUT", b"/up", [], framing), pieces(), chunked=chunked
            )
            assert head.status == 200
            assert await x.read() == b"500000"
            assert await x.read() == b""
    assert raw.requests[0][1] == raw.requests[1][1]
    assert raw.requests[0][1] == b"".join(bytes([65 + i]) * 100_000 for i in range(5))
    assert raw.connections == 1


async def test_unreachable_upstream() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = Pool(f"http://127.0.0.1:{port}", limit=1, connect_timeout=2)
    with pytest.raises(UpstreamUnavailable, match="cannot connect"):
        await _get(pool)
    with pytest.raises(UpstreamUnavailable, match="cannot connect"):
        await _get(pool)  # the slot was given back
    await pool.close()
