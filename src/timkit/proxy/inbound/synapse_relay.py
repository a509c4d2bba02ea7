"""Relaying an inbound request to Synapse and its response back, unchanged.

The request goes out with its method, raw target (path and query byte for byte: federation
requests are signed over the URI), its header fields as received (bytes, not re-encoded)
minus hop-by-hop ones and ``Expect`` (the listener answered it already) plus
``X-Forwarded-For``/``-Proto``, and its body: bytes the proxy already read (checked
requests), a small body with a ``Content-Length`` read and sent in the same write as the head,
or a larger (or chunked) one streamed straight from the client. It travels over pooled
keep-alive connections of :mod:`timkit.proxy.upstream`, a client that does only what relaying
needs (aiohttp's client session costs several times the CPU per request and writes a
request's head and body in two writes).

The response comes back like :func:`timkit.proxy.passthrough.relay_response` relays it: its
status, end-to-end header fields, and its body, read whole while it fits
:data:`~timkit.proxy.passthrough.BUFFER_LIMIT` and sent with a ``Content-Length`` in one write,
else streamed. Upstream failures before the response head is out become 502 (connection,
malformed answer) or 504 (time-out) Matrix errors; after it the client connection is cut.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from timkit.core.errors import Codes, TimkitError
from timkit.core.http import aiohttp_session
from timkit.proxy.config import UpstreamConfig
from timkit.proxy.metrics import ProxyMetrics
from timkit.proxy.passthrough import BUFFER_LIMIT, HOP_BY_HOP, NOT_RELAYED, SKIP_AUTO_HEADERS
from timkit.proxy.upstream import Exchange, Head, Pool, UpstreamUnavailable, request_head

log = logging.getLogger(__name__)

INLINE_LIMIT = 64 * 1024
"""Request bodies with a ``Content-Length`` up to this size are read and sent in one write
with the head; larger ones (and chunked ones) are streamed."""
KEEPALIVE = 60.0
"""Seconds an idle connection to Synapse is kept for reuse."""
_NOT_SENT = frozenset(
    name.encode() for name in HOP_BY_HOP | {"expect", "content-length", "x-forwarded-proto"}
)
_FORWARDED_FOR = b"x-forwarded-for"
_NOT_RELAYED = frozenset(name.encode() for name in NOT_RELAYED)
_NO_BODY_STATUS = frozenset({204, 304})
WHOAMI_PATH = "/_matrix/client/v3/account/whoami"
"""Where Synapse names the user behind an access token (:meth:`Relay.whoami`)."""


class Relay:
    """Sends requests to one upstream base URL over pooled connections.

    Args:
        settings: the upstream's URL, time-outs and pool size.
        metrics: where latency and failures are counted.
    """

    def __init__(self, settings: UpstreamConfig, metrics: ProxyMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._base = ""
        self._pool: Pool | None = None
        self.base = settings.url
        self._session: aiohttp.ClientSession | None = None
        # labelled children resolved once per listener, not on every request
        self._latency = functools.cache(metrics.upstream_seconds.labels)
        self._errors = functools.cache(metrics.upstream_errors.labels)

    @property
    def base(self) -> str:
        """The upstream's base URL (setting it replaces the connection pool)."""
        return self._base

    @base.setter
    def base(self, url: str) -> None:
        self._base = url.rstrip("/")
        old, self._pool = (
            self._pool,
            Pool(
                self._base,
                limit=self.settings.pool_size,
                connect_timeout=self.settings.connect_timeout,
                keepalive=KEEPALIVE,
            ),
        )
        if old is not None:
            asyncio.get_running_loop().create_task(old.close())

    async def start(self) -> None:
        """Open the session for the proxy's own requests to Synapse (:attr:`session`)."""
        self._session = aiohttp_session(
            timeout=self.settings.timeout,
            connect_timeout=self.settings.connect_timeout,
            limit=self.settings.pool_size,
            keepalive=KEEPALIVE,
            dns_ttl=None,
            decompress=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
        )

    async def close(self) -> None:
        """Close the pools."""
        if self._pool is not None:
            await self._pool.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """A pooled aiohttp session to Synapse for the proxy's own requests (after
        :meth:`start`): ``whoami``, OpenID userinfo."""
        assert self._session is not None, "start() first"
        return self._session

    async def whoami(self, authorization: str | None, access_token: str | None = None) -> str:
        """The user id behind a client's access token, as Synapse's ``/account/whoami`` says.

        Args:
            authorization: the client's ``Authorization`` header, passed on as it is.
            access_token: the client's ``access_token`` query parameter, if it used one.

        Raises:
            TimkitError: 401 ``M_UNKNOWN_TOKEN`` when Synapse does not know the token (or
                answers without a user id); 502 ``TIMKIT_UPSTREAM`` when it cannot be asked
                or answers anything else (fail closed; its text is never passed on).
        """
        headers = {"Authorization": authorization} if authorization else {}
        params = {"access_token": access_token} if access_token else {}
        url = self.base + WHOAMI_PATH
        try:
            async with self.session.get(url, headers=headers, params=params) as r:
                status = r.status
                document = await r.json(content_type=None) if status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            self._errors("client").inc()
            log.warning("whoami at the homeserver failed: %s", e)
            raise TimkitError(
                502, Codes.UPSTREAM, "the homeserver could not confirm the access token"
            ) from None
        if status in (401, 403):
            raise TimkitError(401, Codes.UNKNOWN_TOKEN, "the access token is not known")
        user_id = document.get("user_id") if isinstance(document, dict) else None
        if status != 200:
            raise TimkitError(502, Codes.UPSTREAM, f"the homeserver answered whoami with {status}")
        if not isinstance(user_id, str):
            raise TimkitError(401, Codes.UNKNOWN_TOKEN, "the access token does not name a user")
        return user_id

    @property
    def pool(self) -> Pool:
        """The connections relayed requests travel on."""
        assert self._pool is not None
        return self._pool

    async def _send(
        self, x: Exchange, request: web.Request, listener: str, body: bytes | None
    ) -> Head:
        """Send ``request`` (with ``body`` if the proxy read it already); the response head."""
        headers, host = _request_headers(request)
        if not host:
            headers.append((b"Host", self.pool.authority))
        method = request.method.encode("ascii")
        target = request.raw_path.encode("utf-8", "surrogateescape")
        started = time.perf_counter()
        if body is None and request.body_exists:
            length = request.content_length
            if length is not None and length <= INLINE_LIMIT:
                body = await request.content.read()
            else:
                framing = (
                    b"Transfer-Encoding: chunked\r\n"
                    if length is None
                    else b"Content-Length: %d\r\n" % length
                )
                head = await x.send_streamed(
                    method,
                    request_head(method, target, headers, framing),
                    request.content.iter_any(),
                    chunked=length is None,
                )
                self._latency(listener).observe(time.perf_counter() - started)
                return head
        if body is not None:
            framing = b"Content-Length: %d\r\n" % len(body)
        elif request.content_length is not None:  # an empty body, announced
            framing = b"Content-Length: 0\r\n"
        else:
            framing = b""
        head = await x.send(method, request_head(method, target, headers, framing), body or b"")
        self._latency(listener).observe(time.perf_counter() - started)
        return head

    def _failed(self, listener: str, error: BaseException) -> TimkitError:
        self._errors(listener).inc()
        if isinstance(error, TimeoutError):
            return TimkitError(504, Codes.UPSTREAM, "the homeserver did not answer in time")
        return TimkitError(502, Codes.UPSTREAM, f"the homeserver is unreachable: {error}")

    async def forward(
        self, request: web.Request, listener: str, body: bytes | None = None
    ) -> web.StreamResponse:
        """Relay ``request`` (with ``body`` if the proxy read it already) and its response.

        Raises:
            TimkitError: 502 when Synapse cannot be reached, 504 when it did not answer in time.
        """
        streamed: list[web.StreamResponse] = []
        try:
            async with asyncio.timeout(self.settings.timeout), self.pool.exchange() as x:
                head = await self._send(x, request, listener, body)
                return await _relay_response(request, x, head, streamed)
        except (UpstreamUnavailable, TimeoutError, OSError) as e:
            if not streamed or not streamed[0].prepared:
                raise self._failed(listener, e) from e
            log.warning("relaying %s broke off after the head: %s", request.path, e)
            if request.transport is not None:
                request.transport.abort()
            return streamed[0]

    async def exchange(
        self, request: web.Request, listener: str, body: bytes, limit: int
    ) -> tuple[web.Response, bytes]:
        """Like :meth:`forward`, but the response body (at most ``limit`` bytes) is read
        whole so the caller can look at it; the response to send and that body.

        Raises:
            TimkitError: as :meth:`forward`; 502 when the body is larger than ``limit``.
        """
        answer = bytearray()
        try:
            async with asyncio.timeout(self.settings.timeout), self.pool.exchange() as x:
                head = await self._send(x, request, listener, body)
                while chunk := await x.read():
                    answer += chunk
                    if len(answer) > limit:
                        raise TimkitError(
                            502,
                            Codes.UPSTREAM,
                            f"homeserver response: body larger than {limit} bytes",
                        )
        except (UpstreamUnavailable, TimeoutError, OSError) as e:
            raise self._failed(listener, e) from e
        data = bytes(answer)
        return web.Response(status=head.status, headers=_response_headers(head), body=data), data


def _request_headers(request: web.BaseRequest) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The header fields to send on (see the module docstring), and whether they name the
    ``Host``."""
    drop = _NOT_SENT
    connection = request.headers.get("Connection")
    if connection:
        drop = drop | {t.strip().lower().encode("latin-1") for t in connection.split(",")}
    headers: list[tuple[bytes, bytes]] = []
    forwarded_for: bytes | None = None
    host = False
    for name, value in request.raw_headers:
        lower = name.lower()
        if lower == _FORWARDED_FOR:
            if forwarded_for is None:
                forwarded_for = value
            continue
        if lower in drop:
            continue
        if lower == b"host":
            host = True
        headers.append((name, value))
    peer = (request.remote or "").encode("ascii", "replace")
    headers.append((b"X-Forwarded-For", forwarded_for + b", " + peer if forwarded_for else peer))
    headers.append((b"X-Forwarded-Proto", request.scheme.encode("ascii")))
    return headers, host


def _response_headers(head: Head) -> CIMultiDict[str]:
    """The end-to-end header fields of ``head`` minus ``Content-Length``, as aiohttp's client
    would have decoded them."""
    drop = _NOT_RELAYED
    connection = head.get(b"connection")
    if connection:
        drop = drop | {t.strip().lower() for t in connection.split(b",")}
    return CIMultiDict(
        (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        for name, value in head.headers
        if name.lower() not in drop
    )


async def _relay_response(
    request: web.BaseRequest, x: Exchange, head: Head, streamed: list[web.StreamResponse]
) -> web.StreamResponse:
    """The response to send for ``head`` and the body of ``x`` (see the module docstring).

    A body that fits :data:`BUFFER_LIMIT` is read whole and returned in a ``web.Response``,
    which aiohttp sends with its head in one write; a larger one is streamed through a
    ``web.StreamResponse``, appended to ``streamed`` before it is prepared.
    """
    headers = _response_headers(head)
    if request.method == "HEAD" or head.status in _NO_BODY_STATUS:
        response = web.StreamResponse(status=head.status, reason=head.reason, headers=headers)
        announced = head.get(b"content-length")
        if announced is not None:
            response.headers["Content-Length"] = announced.decode("latin-1")
        streamed.append(response)
        await response.prepare(request)
        await response.write_eof()
        return response
    length = x.content_length
    pieces: list[bytes] = []
    size = 0
    while length is None or length <= BUFFER_LIMIT:
        chunk = await x.read()
        if not chunk:
            body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            return web.Response(status=head.status, reason=head.reason, headers=headers, body=body)
        pieces.append(chunk)
        size += len(chunk)
        if size > BUFFER_LIMIT:
            break
    response = web.StreamResponse(status=head.status, reason=head.reason, headers=headers)
    if length is not None:
        response.content_length = length
    streamed.append(response)
    await response.prepare(request)
    await response.write(b"".join(pieces))
    while chunk := await x.read():
        await response.write(chunk)
    await response.write_eof()
    return response
