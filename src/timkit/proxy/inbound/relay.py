"""Relaying an inbound request to Synapse and its response back, unchanged.

The request goes out with its method, raw path and query (byte for byte: federation
requests are signed over the URI), its headers minus hop-by-hop ones plus
``X-Forwarded-For``/``-Proto``, and its body: bytes the proxy already read (checked
requests), or streamed straight from the client. The response comes back through
:func:`timkit.proxy.relaying.relay_response`. Upstream failures become 502 (connection) or
504 (time-out) Matrix errors. Connections to Synapse are pooled (keep-alive).
"""

from __future__ import annotations

import functools
import time

import aiohttp
from aiohttp import web
from yarl import URL

from timkit.core.errors import Codes, TimkitError
from timkit.core.web import read_limited
from timkit.proxy.config import UpstreamConfig
from timkit.proxy.metrics import ProxyMetrics
from timkit.proxy.relaying import NOT_RELAYED, SKIP_AUTO_HEADERS, end_to_end, relay_response


class Relay:
    """Sends requests to one upstream base URL over a pooled session.

    Args:
        settings: the upstream's URL, time-outs and pool size.
        metrics: where latency and failures are counted.
    """

    def __init__(self, settings: UpstreamConfig, metrics: ProxyMetrics) -> None:
        self.base = settings.url.rstrip("/")
        self.settings = settings
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None
        # labelled children resolved once per listener, not on every request
        self._latency = functools.cache(metrics.upstream_seconds.labels)
        self._errors = functools.cache(metrics.upstream_errors.labels)

    async def start(self) -> None:
        """Open the connection pool."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.settings.pool_size, keepalive_timeout=60, ttl_dns_cache=None
            ),
            timeout=aiohttp.ClientTimeout(
                total=self.settings.timeout, sock_connect=self.settings.connect_timeout
            ),
            auto_decompress=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
        )

    async def close(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session (after :meth:`start`)."""
        assert self._session is not None, "start() first"
        return self._session

    async def _send(
        self, request: web.Request, listener: str, body: bytes | None
    ) -> aiohttp.ClientResponse:
        headers = end_to_end(request.headers)
        peer = request.remote or ""
        forwarded_for = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded_for}, {peer}" if forwarded_for else peer
        headers["X-Forwarded-Proto"] = request.scheme
        data: bytes | aiohttp.StreamReader | None = body
        if data is None and request.body_exists:
            data = request.content
        url = URL(self.base + request.raw_path, encoded=True)
        started = time.perf_counter()
        try:
            upstream = await self.session.request(
                request.method, url, headers=headers, data=data, allow_redirects=False
            )
        except TimeoutError as e:
            self._errors(listener).inc()
            raise TimkitError(504, Codes.UPSTREAM, "the homeserver did not answer in time") from e
        except aiohttp.ClientError as e:
            self._errors(listener).inc()
            raise TimkitError(502, Codes.UPSTREAM, f"the homeserver is unreachable: {e}") from e
        self._latency(listener).observe(time.perf_counter() - started)
        return upstream

    async def forward(
        self, request: web.Request, listener: str, body: bytes | None = None
    ) -> web.StreamResponse:
        """Relay ``request`` (with ``body`` if the proxy read it already) and its response.

        Raises:
            TimkitError: 502 when Synapse cannot be reached, 504 when it did not answer in time.
        """
        upstream = await self._send(request, listener, body)
        try:
            return await relay_response(request, upstream)
        finally:
            upstream.release()

    async def exchange(
        self, request: web.Request, listener: str, body: bytes, limit: int
    ) -> tuple[web.Response, bytes]:
        """Like :meth:`forward`, but the response body (at most ``limit`` bytes) is read
        whole so the caller can look at it; the response to send and that body.

        Raises:
            TimkitError: as :meth:`forward`; 502 when the body is larger than ``limit``.
        """
        upstream = await self._send(request, listener, body)
        try:
            answer = await read_limited(upstream, limit)
        except ValueError as e:
            raise TimkitError(502, Codes.UPSTREAM, f"homeserver response: {e}") from e
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TimkitError(502, Codes.UPSTREAM, f"the homeserver broke off: {e}") from e
        finally:
            upstream.release()
        headers = end_to_end(upstream.headers, NOT_RELAYED)
        return web.Response(status=upstream.status, headers=headers, body=answer), answer
