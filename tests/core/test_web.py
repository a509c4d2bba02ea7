"""Bounded body reads over real sockets: bodies that arrive in several segments."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from timkit.core.web import read_stream, running_app


async def _serve_and_send(limit: int, parts: list[bytes]) -> tuple[int, bytes]:
    """A server reading its request body with ``read_stream``; a raw client sending ``parts``
    as separate TCP segments (chunked), with pauses so they arrive apart."""

    async def echo(request: web.Request) -> web.Response:
        try:
            return web.Response(body=await read_stream(request.content, limit))
        except ValueError:
            return web.Response(status=413)

    app = web.Application()
    app.router.add_post("/", echo)
    async with running_app(app, "127.0.0.1", 0) as runner:
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        for part in parts:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.05)  # let the server see this segment on its own
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_read_stream_reads_a_body_sent_in_several_segments() -> None:
    status, body = await _serve_and_send(1000, [b"abc", b"def", b"ghi"])
    assert status == 200
    assert body == b"abcdefghi"


@pytest.mark.parametrize("limit", [8, 3])
async def test_read_stream_stops_at_the_limit(limit: int) -> None:
    status, _ = await _serve_and_send(limit, [b"abc", b"def", b"ghi"])
    assert status == 413
