"""Small aiohttp edge helpers every HTTP component shares.

* :func:`json_response` / :func:`html_response`: bodies serialised with orjson, pages as UTF-8.
* :func:`health`: the ``GET /health`` liveness handler (``{"status": "ok"}``).
* :func:`guard`: the body of an error middleware: run the handler and turn what it raises into
  the component's own error rendering (each component renders its own protocol); every
  aiohttp application of timkit has it in its middleware. :func:`matrix_http_code` is the
  ``http_code`` of the Matrix JSON edges, so each answers an unknown path 404
  ``M_UNRECOGNIZED``, a wrong method 405 ``M_UNRECOGNIZED`` with ``Allow`` and a crash a
  JSON 500 alike.
* :func:`set_headers`: add headers (security headers) a response does not have yet.
* :func:`start_app` / :func:`running_app` / :func:`serve_app`: serve an application on
  ``bind:port`` (optionally over TLS), until SIGTERM or SIGINT for :func:`serve_app`, with
  bounded read times (:class:`ReadTimeouts`, :class:`TimedAppRunner`).
* :func:`read_stream` / :func:`read_limited` / :func:`json_object`: bounded reads of request
  and response bodies.

Read times (slowloris): aiohttp bounds neither how long a client may take to send a request
head nor how long a body may stall. Every listener started here (and any built on
:class:`TimedAppRunner`) therefore runs :class:`_TimedRequestHandler`, aiohttp's server
protocol with timers for the head, the body and idle keep-alive (:class:`ReadTimeouts`):

* ``head``: a request head (request line + headers) must be complete within this many
  seconds of its first byte; for the first request of a connection, of the connection's
  start (after the TLS handshake). Otherwise the connection is closed (nothing can be
  answered before the head is read).
* ``body_stall`` / ``body_total``: a request body that delivers no bytes for ``body_stall``
  seconds, or is not complete ``body_total`` seconds after its head, fails: reading it raises
  :class:`RequestBodyTimeout` (a 408 ``web.HTTPRequestTimeout``, rendered by :func:`guard` in
  the component's protocol) and the connection is closed after the response. Time in which
  the server itself holds the body back (reading paused because the handler has not consumed
  what arrived) counts toward neither limit.
* ``keepalive``: an idle keep-alive connection is closed after this many seconds.

Client disconnects: :func:`guard` logs a request whose client went away (connection reset,
payload cut off, handler cancelled) as one INFO line without a traceback and renders nothing
to it; any other unexpected exception is logged with its traceback and rendered as the
component's generic internal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo

from timkit.core.errors import Codes, IssueType, TimkitError
from timkit.core.lifecycle import wait_for_stop

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""An aiohttp request handler (as middlewares receive it)."""

KEPT_ERROR_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")
"""Headers of an ``HTTPException`` that :func:`guard` keeps on the rendered error."""


@dataclass(frozen=True, slots=True)
class ReadTimeouts:
    """How long a listener waits for a client (seconds; see the module docstring).

    Attributes:
        head: the request head must be complete this long after its first byte (or after
            the connection started, for its first request); else the connection is closed.
        body_stall: a request body delivering no bytes this long fails with 408.
        body_total: a request body not complete this long after its head fails with 408.
        keepalive: an idle keep-alive connection is closed after this long.
    """

    head: float = 10.0
    body_stall: float = 10.0
    body_total: float = 120.0
    keepalive: float = 75.0


class RequestBodyTimeout(web.HTTPRequestTimeout):
    """408: the client stopped sending its request body (raised by reads of the body).

    Args:
        message: what took too long, e.g. ``request body stalled: no data for 10 s``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(text=message, headers={"Connection": "close"})
        self.message = message


class _TimedRequestHandler(RequestHandler):
    """aiohttp's server protocol with head, body and keep-alive timers (:class:`ReadTimeouts`).

    It relies on these internals of ``aiohttp.web_protocol.RequestHandler`` (aiohttp is
    pinned in constraints.txt): ``_request_count`` (complete heads parsed), ``_messages``
    (parsed, not yet handled requests with their payloads; ``_ErrInfo`` for a parse error),
    ``_reading_paused``, ``_upgraded``
    and ``_payload_parser`` (WebSocket), ``_close``/``_force_close``.
    """

    __slots__ = (
        "_body",
        "_body_checked",
        "_body_progress",
        "_body_started",
        "_body_timer",
        "_head_timer",
        "_last_payload",
        "_timeouts",
    )

    def __init__(self, manager: web.Server, *, timeouts: ReadTimeouts, **kwargs: Any) -> None:
        super().__init__(manager, keepalive_timeout=timeouts.keepalive, **kwargs)
        self._timeouts = timeouts
        self._head_timer: asyncio.TimerHandle | None = None
        self._last_payload: aiohttp.StreamReader | None = None
        """The body of the newest request head; bytes after its end start the next head."""
        self._body: aiohttp.StreamReader | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_started = 0.0
        self._body_progress = 0.0
        self._body_checked = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head()
        self._stop_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        websocket = self._upgraded or self._payload_parser is not None
        if data and not websocket:
            self._body_progress = self._loop.time()
            last = self._last_payload
            if self._head_timer is None and (last is None or last.is_eof()):
                self._arm_head()  # the first byte of the next request head
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads and not websocket:
            self._cancel_head()
            message, payload = self._messages[-1] if self._messages else (None, None)
            body = self._body
            if isinstance(message, _ErrInfo) and body is not None and not body.is_eof():
                # aiohttp queues a parse error inside a body as the next "request" and leaves
                # the body waiting: fail the body now (guard answers 400)
                self._fail_body(body, RequestPayloadError(message.message))
                return
            self._last_payload = payload
            if payload is not None and not payload.is_eof():
                self._watch_body(payload)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        # the handler is done with the body: what is left is aiohttp's (bounded) lingering read
        self._stop_body()
        return await super().finish_response(request, resp, start_time)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (400) or handle: a client's
        malformed HTTP is one INFO line here, not an ERROR with a traceback."""
        if status >= 500 or exc is None:
            return super().handle_error(request, status, exc, message)
        reason = str(getattr(exc, "message", "") or type(exc).__name__)[:200]
        log.info("bad HTTP request from %s: %s", request.remote, reason)
        if request.writer.output_size > 0:
            raise ConnectionError("the response is sent already")
        # the parser's message may quote the request line: it stays in the log, not the answer
        response = web.Response(status=status, text=f"{status}: malformed HTTP request")
        response.force_close()
        return response

    # -- head ---------------------------------------------------------------------------------

    def _arm_head(self) -> None:
        self._cancel_head()
        self._head_timer = self._loop.call_later(self._timeouts.head, self._head_expired)

    def _cancel_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport is None or self._force_close:
            return
        log.info(
            "closing connection from %s: request head not complete within %g s",
            _peer(self.transport),
            self._timeouts.head,
        )
        self.force_close()

    # -- body ---------------------------------------------------------------------------------

    def _watch_body(self, payload: aiohttp.StreamReader) -> None:
        self._stop_body()
        now = self._loop.time()
        self._body = payload
        self._body_started = self._body_progress = self._body_checked = now
        self._schedule_body_check()

    def _stop_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._body = None

    def _schedule_body_check(self) -> None:
        timeouts = self._timeouts
        when = min(
            self._body_progress + timeouts.body_stall, self._body_started + timeouts.body_total
        )
        self._body_timer = self._loop.call_at(when, self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        payload = self._body
        if payload is None or payload.is_eof() or self.transport is None:
            return
        now = self._loop.time()
        if self._reading_paused:  # the server holds the body back, not the client
            self._body_started += now - self._body_checked
            self._body_progress = now
        self._body_checked = now
        timeouts = self._timeouts
        if now >= self._body_started + timeouts.body_total:
            message = f"request body not complete within {timeouts.body_total:g} s"
        elif now >= self._body_progress + timeouts.body_stall:
            message = f"request body stalled: no data for {timeouts.body_stall:g} s"
        else:
            self._schedule_body_check()
            return
        log.info("%s from %s", message, _peer(self.transport))
        self._fail_body(payload, RequestBodyTimeout(message))

    def _fail_body(self, payload: aiohttp.StreamReader, error: Exception) -> None:
        """Reads of ``payload`` raise ``error``; the connection closes after the response."""
        self._stop_body()
        payload.set_exception(error)
        payload.feed_eof()  # aiohttp must not linger on it after the response
        self.close()  # the connection is mid-body: it cannot carry another request


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"


class _TimedServer(web.Server):
    """aiohttp's low-level server making :class:`_TimedRequestHandler` protocols."""

    def __init__(self, server: web.Server, timeouts: ReadTimeouts) -> None:
        super().__init__(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
        self.timeouts = timeouts

    def __call__(self) -> RequestHandler:
        return _TimedRequestHandler(self, loop=self._loop, timeouts=self.timeouts, **self._kwargs)


class TimedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections have bounded read times (:class:`ReadTimeouts`).

    Args:
        app: the application.
        timeouts: the listener's read times; default: :class:`ReadTimeouts` defaults.
        **kwargs: as for ``web.AppRunner`` (``access_log``, ``shutdown_timeout``, …);
            ``keepalive_timeout`` comes from ``timeouts``.
    """

    def __init__(
        self, app: web.Application, *, timeouts: ReadTimeouts | None = None, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self.timeouts = timeouts or ReadTimeouts()

    async def _make_server(self) -> web.Server:
        return _TimedServer(await super()._make_server(), self.timeouts)


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

    * :class:`TimkitError`: rendered as is; its ``headers`` are added to the response.
    * ``web.HTTPException`` of status 400 or more (no route, method not allowed, body too
      large, …): rendered as ``TimkitError(status, http_code(status), "<METHOD> <path>:
      <reason>")`` keeping its :data:`KEPT_ERROR_HEADERS` (``Allow`` on a 405,
      ``WWW-Authenticate`` on a 401); a :class:`RequestBodyTimeout` is rendered with its own
      message and closes the connection. Redirects and other statuses below 400 propagate.
    * a request body aiohttp cannot decode (broken chunked encoding, …): 400.
    * the client went away (connection reset or cut off while the body was read): one INFO
      line on ``logger``, no traceback, nothing rendered to it; a cancelled handler (client
      gone, server stopping) is logged the same way and the cancellation propagates.
    * any other exception: logged with its traceback on ``logger`` and rendered as
      ``internal`` (nothing of it reaches the client).
    """
    try:
        return await handler(request)
    except TimkitError as e:
        return _render_with_headers(request, render, e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if isinstance(e, RequestBodyTimeout):
            message = e.message
        else:
            message = f"{request.method} {request.path}: {e.reason}"
        error = TimkitError(e.status, http_code(e.status), message, headers=kept_headers(e))
        response = _render_with_headers(request, render, error)
        if isinstance(e, RequestBodyTimeout):
            response.force_close()
        return response
    except asyncio.CancelledError:
        logger.info("%s %s: handler cancelled", request.method, request.path)
        raise
    except RequestPayloadError as e:
        if _client_gone(request):
            return _gone(request, e, logger)
        error = TimkitError(400, http_code(400), f"the request body is malformed: {e}")
        return _render_with_headers(request, render, error)
    except (ConnectionError, aiohttp.ClientPayloadError) as e:
        if _client_gone(request):
            return _gone(request, e, logger)
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return render(request, internal)
    except Exception:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        return render(request, internal)


def matrix_http_code(status: int) -> str:
    """The Matrix ``errcode`` of an aiohttp HTTP error of ``status`` (``guard``'s ``http_code``
    for Matrix JSON edges): 404 (no such path) and 405 (no such method)
    ``M_UNRECOGNIZED``, 413 ``M_TOO_LARGE``, anything else ``M_UNKNOWN``."""
    return _MATRIX_HTTP_CODES.get(status, Codes.UNKNOWN)


_MATRIX_HTTP_CODES = {404: Codes.UNRECOGNIZED, 405: Codes.UNRECOGNIZED, 413: Codes.TOO_LARGE}


def fhir_http_code(status: int) -> str:
    """The FHIR ``OperationOutcome`` issue code of an aiohttp HTTP error of ``status``
    (``guard``'s ``http_code`` for FHIR edges): 404 ``not-found``, anything else
    ``not-supported``."""
    return IssueType.NOT_FOUND if status == 404 else IssueType.NOT_SUPPORTED


MATRIX_INTERNAL = TimkitError(500, Codes.UNKNOWN, "internal error")
"""What a Matrix JSON edge answers for an unexpected exception."""

FHIR_INTERNAL = TimkitError(500, IssueType.EXCEPTION, "internal server error")
"""What a FHIR edge answers for an unexpected exception."""


def edge_middleware(
    render: Callable[[web.Request, TimkitError], web.StreamResponse],
    *,
    http_code: Callable[[int], str] = matrix_http_code,
    internal: TimkitError = MATRIX_INTERNAL,
    logger: logging.Logger = log,
    headers: Mapping[str, str] | None = None,
) -> Middleware:
    """The outermost middleware of a component's app: every request through :func:`guard`
    (errors rendered by ``render``), then ``headers`` set on every response (error or not)
    unless the handler set them already.

    Defaults fit a Matrix JSON edge; a FHIR edge passes :func:`fhir_http_code` and
    :data:`FHIR_INTERNAL`.
    """
    extra = dict(headers or {})

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await guard(
            request, handler, render, http_code=http_code, internal=internal, logger=logger
        )
        if extra:
            set_headers(response, extra)
        return response

    return edge


def kept_headers(error: web.HTTPException) -> dict[str, str]:
    """The :data:`KEPT_ERROR_HEADERS` ``error`` carries (``Allow`` of a 405, …), for an edge
    that renders aiohttp's HTTP errors in its own protocol."""
    return {name: error.headers[name] for name in KEPT_ERROR_HEADERS if name in error.headers}


def _render_with_headers(
    request: web.Request,
    render: Callable[[web.Request, TimkitError], web.StreamResponse],
    error: TimkitError,
) -> web.StreamResponse:
    response = render(request, error)
    set_headers(response, error.headers)
    return response


def _client_gone(request: web.Request) -> bool:
    """Whether the client's connection is closed (or closing)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _gone(request: web.Request, error: BaseException, logger: logging.Logger) -> web.Response:
    logger.info("%s %s: client went away (%s)", request.method, request.path, type(error).__name__)
    response = web.Response(status=400)  # nobody receives it: the connection is gone
    response.force_close()
    return response


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
    timeouts: ReadTimeouts | None = None,
) -> web.AppRunner:
    """Serve ``app`` on ``bind:port`` (HTTPS with ``ssl_context``); no access log.

    Connections have bounded read times (``timeouts``; default :class:`ReadTimeouts`()).
    Returns the runner; the caller cleans it up (``await runner.cleanup()``).

    Raises:
        OSError: when the port cannot be bound (the runner is cleaned up then).
    """
    runner = TimedAppRunner(app, timeouts=timeouts, access_log=None)
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
    timeouts: ReadTimeouts | None = None,
) -> AsyncIterator[web.AppRunner]:
    """:func:`start_app` as a context: the app serves inside, is cleaned up on leaving."""
    runner = await start_app(app, bind, port, ssl_context, reuse_port=reuse_port, timeouts=timeouts)
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
    timeouts: ReadTimeouts | None = None,
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
        timeouts: the connections' read times; default :class:`ReadTimeouts`().

    Raises:
        OSError: when the port cannot be bound.
    """
    async with running_app(app, bind, port, ssl_context, reuse_port=reuse_port, timeouts=timeouts):
        if description:
            logger.info("%s", description)
        await wait_for_stop()
