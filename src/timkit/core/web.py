"""Small aiohttp edge helpers every HTTP component shares.

* :func:`json_response` / :func:`html_response`: bodies serialised with orjson, pages as UTF-8.
* :func:`health`: the ``GET /health`` liveness handler (``{"status": "ok"}``).
* :func:`guard`: the body of an error middleware: run the handler and turn what it raises into
  the component's own error rendering (each component renders its own protocol).
* :func:`set_headers`: add headers (security headers) a response does not have yet.
* :func:`start_app` / :func:`running_app` / :func:`serve_app`: serve an application on
  ``bind:port`` (optionally over TLS), until SIGTERM or SIGINT for :func:`serve_app`.
* :func:`read_stream` / :func:`read_limited` / :func:`json_object`: bounded reads of request
  and response bodies.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from timkit.core.errors import TimkitError
from timkit.core.lifecycle import wait_for_stop

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""An aiohttp request handler (as middlewares receive it)."""


def json_response(
    body: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    content_type: str = "application/json",
    charset: str | None = None,
) -> web.Response:
    """``body`` serialised with orjson (so ``orjson.Fragment`` passes pre-serialised JSON).

    Args:
        body: anything orjson serialises.
        status: the HTTP status.
        headers: extra response headers.
        content_type: the media type (``application/fhir+json`` for FHIR).
        charset: a ``charset`` parameter for the ``Content-Type``; None = none.
    """
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type=content_type,
        charset=charset,
        headers=headers,
    )


def html_response(
    text: str, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An HTML page (``text/html; charset=utf-8``)."""
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=headers
    )


async def health(_request: web.Request) -> web.Response:
    """``GET /health``: ``{"status": "ok"}`` while the process serves (for the supervisor)."""
    return json_response({"status": "ok"})


SCRIPTLESS_PAGE_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "Cache-Control": "no-store",
}
"""Security headers of a local tool's pages and JSON API (mailbox, push receiver): no
scripts, inline styles only, never framed, forms post to the same origin, nothing cached."""


def set_headers(response: web.StreamResponse, headers: Mapping[str, str]) -> None:
    """Add each of ``headers`` that ``response`` does not set itself (handlers win)."""
    for name, value in headers.items():
        response.headers.setdefault(name, value)


async def guard(
    request: web.Request,
    handler: Handler,
    render: Callable[[web.Request, TimkitError], web.StreamResponse],
    *,
    http_code: Callable[[int], str],
    internal: TimkitError,
    logger: logging.Logger = log,
) -> web.StreamResponse:
    """``handler(request)``, with what it raises rendered by ``render``.

    * :class:`TimkitError`: rendered as is.
    * ``web.HTTPException`` of status 400 or more (no route, method not allowed, body too
      large, …): rendered as ``TimkitError(status, http_code(status), "<METHOD> <path>:
      <reason>")``; redirects and other statuses below 400 propagate.
    * any other exception: logged with its traceback on ``logger`` and rendered as
      ``internal`` (nothing of it reaches the client).
    """
    try:
        return await handler(request)
    except TimkitError as e:
        return render(request, e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        error = TimkitError(
            e.status, http_code(e.status), f"{request.method} {request.path}: {e.reason}"
        )
        return render(request, error)
    except Exception:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return render(request, internal)


async def read_stream(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Everything up to the end of ``stream`` (a request's or a response's body).

    ``StreamReader.read(n)`` returns what has arrived so far, so one call may hand back only
    the first segments of a body; this reads to the end.

    Raises:
        ValueError: as soon as more than ``limit`` bytes arrived.
    """
    body = bytearray()
    while chunk := await stream.readany():
        body += chunk
        if len(body) > limit:
            raise ValueError(f"body larger than {limit} bytes")
    return bytes(body)


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The response body; ValueError when it is longer than ``limit`` bytes."""
    return await read_stream(response.content, limit)


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` parsed as a JSON object, or None when it is not one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


async def start_app(
    app: web.Application,
    bind: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    *,
    reuse_port: bool | None = None,
) -> web.AppRunner:
    """Serve ``app`` on ``bind:port`` (HTTPS with ``ssl_context``); no access log.

    Returns the runner; the caller cleans it up (``await runner.cleanup()``).

    Raises:
        OSError: when the port cannot be bound (the runner is cleaned up then).
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, bind, port, ssl_context=ssl_context, reuse_port=reuse_port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


@contextlib.asynccontextmanager
async def running_app(
    app: web.Application,
    bind: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    *,
    reuse_port: bool | None = None,
) -> AsyncIterator[web.AppRunner]:
    """:func:`start_app` as a context: the app serves inside, is cleaned up on leaving."""
    runner = await start_app(app, bind, port, ssl_context, reuse_port=reuse_port)
    try:
        yield runner
    finally:
        await runner.cleanup()


async def serve_app(
    app: web.Application,
    bind: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    description: str = "",
    *,
    reuse_port: bool | None = None,
    logger: logging.Logger = log,
) -> None:
    """Serve ``app`` on ``bind:port`` until SIGTERM or SIGINT, then clean it up.

    Args:
        app: the application.
        bind: listen address.
        port: listen port.
        ssl_context: server TLS context; None = plain HTTP.
        description: logged (INFO, on ``logger``) once the port is bound; empty = nothing.
        reuse_port: ``SO_REUSEPORT``, for several processes on one port.
        logger: where ``description`` is logged.

    Raises:
        OSError: when the port cannot be bound.
    """
    async with running_app(app, bind, port, ssl_context, reuse_port=reuse_port):
        if description:
            logger.info("%s", description)
        await wait_for_stop()
