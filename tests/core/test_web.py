"""The shared HTTP edge over real sockets: bounded body reads, read times against slowloris
heads and stalled bodies, error headers kept by ``guard``, clients that go away."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import socket
import struct
import time
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp import web

import timkit
from tests.support.wait import async_wait_until
from timkit.core.errors import Codes, TimkitError
from timkit.core.web import (
    Handler,
    ReadTimeouts,
    guard,
    json_response,
    matrix_http_code,
    read_stream,
    running_app,
)


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


# -- the shared edge: read times, kept error headers, clients that go away ----------------------

FAST = ReadTimeouts(head=0.3, body_stall=0.3, body_total=1.5, keepalive=5.0)
"""Small limits so the attacks end quickly."""


def _edge_app() -> web.Application:
    """An app behind :func:`guard` (Matrix JSON errors): ``POST /echo`` reads its body with
    ``read_stream``; ``GET /protected`` answers 401 with a challenge; ``GET /ok``."""

    def render(_request: web.Request, error: TimkitError) -> web.Response:
        return json_response(error.to_matrix(), error.status)

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await guard(
            request,
            handler,
            render,
            http_code=lambda status: "M_UNRECOGNIZED" if status == 405 else Codes.UNKNOWN,
            internal=TimkitError(500, Codes.UNKNOWN, "internal error"),
        )

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await read_stream(request.content, 1_000_000))

    async def protected(_request: web.Request) -> web.Response:
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="x"'})

    async def ok(_request: web.Request) -> web.Response:
        return json_response({"ok": True})

    app = web.Application(middlewares=[edge])
    app.router.add_post("/echo", echo)
    app.router.add_get("/protected", protected)
    app.router.add_get("/ok", ok)
    return app


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a ``Content-Length`` from ``reader``."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection (EOF or reset) without answering."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


async def test_a_slowloris_head_is_cut_off_within_the_limit() -> None:
    head = b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
    async with running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        started = time.monotonic()
        sent = 0
        with contextlib.suppress(ConnectionError):
            for byte in head:  # one byte every 50 ms: the head would take 3.5 s
                writer.write(bytes([byte]))
                await writer.drain()
                sent += 1
                await asyncio.sleep(0.05)
                if reader.at_eof():
                    break
        assert await _closed(reader)
        elapsed = time.monotonic() - started
        writer.close()
    assert sent < len(head)
    assert elapsed < FAST.head + 0.5


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_limit() -> None:
    async with running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        started = time.monotonic()
        assert await asyncio.wait_for(_closed(reader), 5)
        assert time.monotonic() - started < FAST.head + 0.5
        writer.close()


async def test_an_idle_keep_alive_connection_outlives_the_head_limit() -> None:
    request = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
    async with running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        writer.write(request)
        assert (await _read_answer(reader))[0] == 200
        await asyncio.sleep(FAST.head * 2)  # idle longer than the head limit (configured)
        writer.write(request)
        assert (await _read_answer(reader))[0] == 200
        writer.close()


async def test_a_stalled_body_is_answered_408_within_the_limit() -> None:
    async with running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        writer.write(b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a":')
        await writer.drain()
        started = time.monotonic()
        status, headers, body = await asyncio.wait_for(_read_answer(reader), 5)
        elapsed = time.monotonic() - started
        assert await _closed(reader)
        writer.close()
    assert status == 408
    assert headers["connection"] == "close"
    assert orjson.loads(body) == {
        "errcode": Codes.UNKNOWN,
        "error": f"request body stalled: no data for {FAST.head:g} s",
    }
    assert elapsed < FAST.body_stall + 0.5


async def test_a_body_trickling_past_the_total_limit_is_answered_408() -> None:
    async with running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        started = time.monotonic()
        answer = asyncio.ensure_future(_read_answer(reader))
        with contextlib.suppress(ConnectionError):
            while not answer.done():  # one byte per 100 ms: never stalls, never ends
                writer.write(b"x")
                await writer.drain()
                await asyncio.wait([answer], timeout=0.1)
        status, _, body = await answer
        elapsed = time.monotonic() - started
        writer.close()
    assert status == 408
    assert orjson.loads(body)["error"] == f"request body not complete within {FAST.body_total:g} s"
    assert FAST.body_total <= elapsed < FAST.body_total + 0.5


async def test_a_slow_but_progressing_body_within_the_limits_succeeds() -> None:
    parts = [b"part%d;" % i for i in range(8)]
    async with running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        total = sum(len(p) for p in parts)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        for part in parts:  # 8 x 0.1 s: longer than the stall limit in all, shorter per gap
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.1)
        status, _, body = await asyncio.wait_for(_read_answer(reader), 5)
        writer.close()
    assert status == 200
    assert body == b"".join(parts)


async def test_405_keeps_allow_and_401_keeps_www_authenticate() -> None:
    async with (
        running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}") as http,
    ):
        wrong_method = await http.delete("/echo")
        challenged = await http.get("/protected")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert wrong_method.json()["errcode"] == "M_UNRECOGNIZED"
    assert challenged.status_code == 401
    assert challenged.headers["WWW-Authenticate"] == 'Bearer realm="x"'


async def test_a_timkit_error_carries_its_headers_through_guard() -> None:
    async def limited(_request: web.Request) -> web.Response:
        raise TimkitError(429, Codes.LIMIT_EXCEEDED, "slow down", headers={"Retry-After": "7"})

    app = _edge_app()
    app.router.add_get("/limited", limited)
    async with (
        running_app(app, "127.0.0.1", 0) as runner,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}") as http,
    ):
        answer = await http.get("/limited")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json() == {"errcode": "M_LIMIT_EXCEEDED", "error": "slow down"}


async def test_a_client_gone_mid_body_leaves_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner:
        port = runner.addresses[0][1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # RST mid-body

        await async_wait_until(
            lambda: any("client went away" in r.getMessage() for r in caplog.records),
            "the disconnect to be logged",
            timeout=5,
        )
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"http://127.0.0.1:{port}/echo", content=b"still here")
    assert answer.content == b"still here"
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def test_malformed_http_is_a_400_not_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n"
        )
        status, _, body = await asyncio.wait_for(_read_answer(reader), 5)
        writer.close()
    assert status == 400
    assert body == b"400: malformed HTTP request"
    assert "Invalid character in chunk size" in caplog.text
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def test_a_malformed_request_line_is_not_echoed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_app(_edge_app(), "127.0.0.1", 0, timeouts=FAST) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        writer.write(b"GET /search/\xc3\xa4<script> HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await asyncio.wait_for(_read_answer(reader), 5)
        writer.close()
    assert status == 400
    assert body == b"400: malformed HTTP request"
    assert "bad HTTP request" in caplog.text


async def test_a_body_broken_mid_read_is_a_400_in_the_protocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reading = asyncio.Event()

    async def slow_echo(request: web.Request) -> web.Response:
        reading.set()
        return web.Response(body=await read_stream(request.content, 1000))

    app = _edge_app()
    app.router.add_post("/slow-echo", slow_echo)
    async with running_app(app, "127.0.0.1", 0, timeouts=FAST) as runner:
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        writer.write(
            b"POST /slow-echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        await asyncio.wait_for(reading.wait(), 5)
        writer.write(b"zz\r\nab\r\n")
        status, _, body = await asyncio.wait_for(_read_answer(reader), 5)
        writer.close()
    assert status == 400
    assert orjson.loads(body)["error"].startswith("the request body is malformed")
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


async def test_a_real_bug_still_gets_a_traceback_and_a_generic_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(_request: web.Request) -> web.Response:
        raise ConnectionResetError("the upstream reset: secret detail")

    app = _edge_app()
    app.router.add_get("/broken", broken)
    async with (
        running_app(app, "127.0.0.1", 0) as runner,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{runner.addresses[0][1]}") as http,
    ):
        answer = await http.get("/broken")
    assert answer.status_code == 500
    assert answer.json() == {"errcode": "M_UNKNOWN", "error": "internal error"}
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [
        "unhandled error in GET /broken"
    ]


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def test_every_aiohttp_app_of_a_component_goes_through_guard() -> None:
    """Each module building a ``web.Application`` has a middleware and calls ``guard`` or
    ``edge_middleware`` (which wraps it), so
    every edge answers 404/405/500 the same way (the benchmarks' stand-ins for Synapse and
    push services in ``timkit.bench`` answer as those do, not as a timkit edge)."""
    src = Path(timkit.__file__).parent
    apps = []
    for path in sorted(src.rglob("*.py")):
        if path.is_relative_to(src / "bench"):
            continue
        calls = _calls(ast.parse(path.read_text("utf-8")))
        for call in calls:
            if _called_name(call) == "Application":
                apps.append(path.relative_to(src).as_posix())
                assert any(k.arg == "middlewares" for k in call.keywords), path
                assert any(_called_name(c) in ("guard", "edge_middleware") for c in calls), path
    assert "runtime/control_api.py" in apps
    assert "proxy/contacts/api.py" in apps
    assert len(apps) >= 10


def test_matrix_http_code_is_one_answer_for_routing_and_size_errors() -> None:
    assert matrix_http_code(404) == matrix_http_code(405) == Codes.UNRECOGNIZED
    assert matrix_http_code(413) == Codes.TOO_LARGE
    assert matrix_http_code(400) == matrix_http_code(408) == Codes.UNKNOWN
