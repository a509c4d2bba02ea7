"""The outbound forward proxy: a TLS-intercepting ``CONNECT`` proxy that checks every request.

Synapse resolves a server name itself (``/.well-known/matrix/server`` first) and then asks
its ``https_proxy`` for ``CONNECT host:port``. This proxy answers ``200``, then terminates
the TLS session inside the tunnel itself with a certificate for ``host`` minted by its
interception CA (:mod:`timkit.proxy.outbound.interception`; only its own Synapse trusts that
CA), reads the HTTP/1.1 requests inside (keep-alive, parsed by aiohttp's server protocol) and
checks each one before it leaves the organisation (ML-123665, stage 1 of seed 002 §3.5.2.1):

* a request signed with ``Authorization: X-Matrix …`` goes out only when its ``destination``
  is in the federation list;
* an unsigned one (``/.well-known/matrix/server``, ``/_matrix/key/v2/server``) only when the
  host it is for is: the name the client asked for in its TLS SNI, which is the ``CONNECT``
  host unless an SRV record pointed Synapse elsewhere;
* a legacy media request ``/_matrix/media/*/{download,thumbnail}/{serverName}/…`` also only
  when ``serverName`` is.

A refused request gets the Matrix error of the :class:`~timkit.proxy.domain_gate.DomainGate` (403
``M_FORBIDDEN`` citing ML-123665, or 503 without a valid list) and never leaves. An allowed
one is sent unchanged (method, raw path and query, end-to-end headers, body bytes) over a
pooled, verified TLS connection to the destination and its response relayed back. Where the
destination is reached comes from the route file (``routes_file``, re-read when it changes)
or the static ``routes`` (server name → ``host:port``), else, with ``unrouted = "direct"``,
from DNS; the TLS connection still names and verifies ``host`` (SNI and certificate).

There is no unchecked tunnelling mode: without an interception CA the proxy refuses to start.
Besides ``CONNECT`` the listener answers ``GET /health`` with 200 for the supervisor.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from typing import Any, cast

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from yarl import URL

from timkit.core.errors import Codes, ConfigError, TimkitError
from timkit.core.http import aiohttp_session
from timkit.core.names import NameTable, split_target
from timkit.core.request_target import UnparsableRequest, parse_target
from timkit.core.web import json_response
from timkit.proxy.config import ForwardProxyConfig, Unrouted
from timkit.proxy.domain_gate import DomainGate
from timkit.proxy.metrics import ProxyMetrics
from timkit.proxy.outbound.interception import HostContext, InterceptionCA, valid_host
from timkit.proxy.passthrough import HOP_BY_HOP, SKIP_AUTO_HEADERS, end_to_end, relay_response
from timkit.proxy.xmatrix import parse_x_matrix

logger = logging.getLogger(__name__)

REQUIREMENT = "ML-123665"
"""Messenger-Proxy des Senders prüft Domain des Empfängers (seed 002 §3.5.2.1)."""
LISTENER = "forward"
"""The ``listener`` label of this proxy's metrics."""

MAX_HEADER_BYTES = 16 * 1024
"""Largest ``CONNECT`` request head."""
HEAD_TIMEOUT = 10.0
"""Seconds a new connection may take to send its ``CONNECT`` head."""
HANDSHAKE_TIMEOUT = 10.0
"""Seconds the TLS handshake inside a tunnel may take."""
IDLE_TIMEOUT = 150.0
"""Seconds an idle tunnel is kept open; above Synapse's 120 s, so Synapse closes first."""
SHUTDOWN_GRACE = 5.0
"""Seconds :meth:`ForwardProxy.close` lets in-flight requests finish."""
MAX_BODY = 100 * 1024 * 1024
"""Largest request body forwarded (like the inbound listener's ``max_body``)."""
_NOT_FORWARDED = HOP_BY_HOP | {"expect"}


class BadRequest(Exception):
    """The client sent something that is not a valid proxy request."""


def _response(status: str, body: str = "") -> bytes:
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + data


def parse_authority(authority: str) -> tuple[str, int]:
    """Split a CONNECT target ``host:port`` (``[v6]:port`` too) into host and port.

    Returns:
        The lower-case host (IPv6 without brackets) and the port.

    Raises:
        BadRequest: when the target has no valid port or no valid host.
    """
    host, sep, port = authority.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadRequest(f"CONNECT target must be host:port, got {authority!r}")
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), int(port)
        except ValueError:
            pass
    elif valid_host(host) and ":" not in host:
        return host, int(port)
    raise BadRequest(f"CONNECT target has no valid host name: {authority!r}")


def domains_to_check(host: str, raw_path: str, authorizations: list[str]) -> list[str]:
    """The domains a request to ``host`` must be allowed to reach (ML-123665).

    Every ``X-Matrix`` ``destination``, or ``host`` when the request names none; plus the
    server name of a legacy media download or thumbnail path, read from the target's
    segments as the destination splits them (:func:`timkit.core.request_target.parse_target`:
    ``/_matrix/medi%61/…`` is a media path too).

    Raises:
        BadRequest: for a malformed ``X-Matrix`` header or a target that cannot be read
            unambiguously.
    """
    try:
        segments = parse_target(raw_path).segments
    except UnparsableRequest as e:
        raise BadRequest(str(e)) from None
    domains: list[str] = []
    for value in authorizations:
        try:
            params = parse_x_matrix(value)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        if params is not None and params.get("destination"):
            domains.append(params["destination"].lower())
    if not domains:
        domains.append(host)
    legacy_media = segments[:2] == ("_matrix", "media") and len(segments) > 4
    if legacy_media and segments[3] in ("download", "thumbnail"):
        domains.append(segments[4].lower())
    return domains


def _too_large() -> TimkitError:
    return TimkitError(413, Codes.TOO_LARGE, f"request body over {MAX_BODY} bytes")


def _error(error: TimkitError) -> web.Response:
    return json_response(error.to_matrix(), status=error.status, headers=error.headers)


class _RouteResolver(AbstractResolver):
    """Resolves server names through the proxy's route table, else (if allowed) DNS."""

    def __init__(self, proxy: ForwardProxy) -> None:
        self._proxy = proxy
        self._dns = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        target = self._proxy.route(host, port)
        if target is None:
            raise OSError(f"no route to {host}")
        address, target_port = target
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return await self._dns.resolve(address, target_port, family)
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": target_port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        await self._dns.close()


class _ConnectProtocol(asyncio.Protocol):
    """One client connection until its tunnel is handed to aiohttp's request handler.

    Reads the ``CONNECT`` head, then keeps what TLS decrypts before the hand-over (a
    client's first request may arrive together with its handshake) for the handler.
    """

    def __init__(self, proxy: ForwardProxy) -> None:
        self._proxy = proxy
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head_done = False
        self._timer: asyncio.TimerHandle | None = None
        self.early = bytearray()
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._proxy._pending.add(self._transport)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(HEAD_TIMEOUT, self._transport.close)

    def data_received(self, data: bytes) -> None:
        if self._head_done:
            self.early += data  # decrypted bytes before the hand-over
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                self._reply(_response("431 Request Header Fields Too Large"))
            return
        self._head_done = True
        if self._timer is not None:
            self._timer.cancel()
        assert self._transport is not None
        if end + 4 != len(self._buffer):
            self._reply(_response("400 Bad Request", "data sent before the tunnel was open\n"))
            return
        self._proxy._on_head(self._transport, self, bytes(self._buffer[:end]))

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.eof = True
        if self._transport is not None:
            self._proxy._pending.discard(self._transport)

    def _reply(self, response: bytes) -> None:
        assert self._transport is not None
        self._head_done = True
        self._transport.write(response)
        self._transport.close()


class _Tunnel(web.Server):
    """aiohttp's low-level server for the requests inside one intercepted tunnel."""

    def __init__(self, proxy: ForwardProxy, host: str, port: int, tls_host: str) -> None:
        super().__init__(
            self._handle,
            request_factory=self._new_request,
            keepalive_timeout=IDLE_TIMEOUT,
            access_log=None,
            auto_decompress=False,
        )
        self.proxy = proxy
        self.host = host
        self.port = port
        self.tls_host = tls_host

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self.proxy._forward(self, request)

    def _new_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        return web.BaseRequest(
            message, payload, protocol, writer, task, self._loop, client_max_size=MAX_BODY
        )

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.proxy._tunnels.discard(self)


class ForwardProxy:
    """The TLS-intercepting forward proxy of one Messenger-Proxy.

    Args:
        config: listen address, interception CA, onward trust, routes and limits.
        gate: stage 1 of the permission check (the federation list).
        metrics: where to count requests, denials and upstream latency; default: private.

    Attributes:
        ca: the interception CA minting the certificates shown to Synapse.

    Raises:
        ConfigError: when the interception CA or ``ca_file`` is missing or cannot be loaded.
    """

    def __init__(
        self,
        config: ForwardProxyConfig,
        gate: DomainGate,
        metrics: ProxyMetrics | None = None,
    ) -> None:
        self._config = config
        self._gate = gate
        self._metrics = metrics or ProxyMetrics()
        self.ca = InterceptionCA(config.interception_ca_cert, config.interception_ca_key)
        self._names = NameTable(config.routes_file, config.routes)
        cafile = str(config.ca_file) if config.ca_file is not None else None
        try:
            self._upstream_tls = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load {cafile}: {e}", path="forward.ca_file") from None
        self._requests = self._metrics.requests.labels(LISTENER)
        self._upstream_seconds = self._metrics.upstream_seconds.labels(LISTENER)
        self._upstream_errors = self._metrics.upstream_errors.labels(LISTENER)
        self._server: asyncio.Server | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Transport] = set()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._tunnels: set[_Tunnel] = set()

    @property
    def port(self) -> int:
        """The port actually bound (useful when configured as 0)."""
        assert self._server is not None, "proxy not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def tunnels(self) -> int:
        """How many intercepted tunnels are open."""
        return len(self._tunnels)

    async def start(self) -> None:
        """Open the onward connection pool, bind and start accepting connections."""
        config = self._config
        self._session = aiohttp_session(
            tls=self._upstream_tls,
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            limit=config.pool_size,
            limit_per_host=max(1, config.pool_size // 4),
            keepalive=60.0,
            resolver=_RouteResolver(self),
            dns_cache=False,  # the route table decides on every new connection
            decompress=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
            cookies=False,
        )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ConnectProtocol(self), config.bind, config.port
        )
        logger.info("forward proxy listening on %s:%d", config.bind, self.port)

    async def close(self) -> None:
        """Stop accepting, let in-flight requests finish briefly, end tunnels and the pool."""
        if self._server is not None:
            self._server.close()
        for transport in list(self._pending):
            transport.abort()
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        tunnels = list(self._tunnels)
        for tunnel in tunnels:
            tunnel.pre_shutdown()
        await asyncio.gather(*(t.shutdown(SHUTDOWN_GRACE) for t in tunnels))
        self._tunnels.clear()
        if self._server is not None:
            await self._server.wait_closed()
        if self._session is not None:
            await self._session.close()

    def route(self, host: str, port: int) -> tuple[str, int] | None:
        """Where requests for ``host:port`` go, or ``None`` if they must be refused.

        The route file is consulted on every call (a ``stat``; re-read only when it changed).
        """
        target = self._names.resolve(host)
        if target is not None:
            return split_target(target)
        if self._config.unrouted is Unrouted.DIRECT:
            return host, port
        return None

    # --- CONNECT and interception ---------------------------------------------------------

    def _on_head(
        self, transport: asyncio.Transport, protocol: _ConnectProtocol, head: bytes
    ) -> None:
        try:
            method, target = _request_line(head)
            if method == "GET" and target == "/health":
                protocol._reply(_response("200 OK", "OK"))
                return
            if method != "CONNECT":
                protocol._reply(_response("405 Method Not Allowed", "only CONNECT is supported\n"))
                return
            host, port = parse_authority(target)
            context = self.ca.context_for(host)
        except (BadRequest, ValueError) as exc:
            protocol._reply(_response("400 Bad Request", f"{exc}\n"))
            return
        transport.pause_reading()
        transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        task = asyncio.get_running_loop().create_task(
            self._intercept(transport, protocol, context, host, port)
        )
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _intercept(
        self,
        transport: asyncio.Transport,
        protocol: _ConnectProtocol,
        context: ssl.SSLContext,
        host: str,
        port: int,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                transport,
                protocol,
                context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            logger.info("TLS handshake for CONNECT %s:%d failed: %s", host, port, exc)
            transport.abort()
            return
        finally:
            self._pending.discard(transport)
        if tls is None or tls.is_closing():
            transport.abort()
            return
        ssl_object = tls.get_extra_info("ssl_object")
        used = getattr(ssl_object, "context", None)
        tls_host = used.host if isinstance(used, HostContext) else host  # SNI, if it differed
        tunnel = _Tunnel(self, host, port, tls_host)
        self._tunnels.add(tunnel)
        handler = tunnel()
        tls.set_protocol(handler)
        handler.connection_made(tls)
        if protocol.early:
            handler.data_received(bytes(protocol.early))
        if protocol.eof:
            handler.eof_received()

    # --- the requests inside a tunnel -----------------------------------------------------

    async def _forward(self, tunnel: _Tunnel, request: web.BaseRequest) -> web.StreamResponse:
        self._requests.inc()
        host, port = tunnel.host, tunnel.port
        raw_path = request.raw_path
        try:
            authorizations = request.headers.getall("Authorization", [])
            domains = domains_to_check(tunnel.tls_host, raw_path, authorizations)
        except BadRequest as exc:
            return _error(TimkitError(400, Codes.INVALID_PARAM, str(exc)))
        try:
            for domain in domains:
                await self._check(domain)
        except TimkitError as exc:
            self._metrics.denied(LISTENER, exc.requirement)
            logger.info("refused %s %s to %s: %s", request.method, raw_path, host, exc)
            return _error(exc)
        if self.route(host, port) is None:
            self._upstream_errors.inc()
            return _error(
                TimkitError(502, Codes.UPSTREAM, f"no route to {host} (unrouted names are refused)")
            )
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(_too_large())
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(_too_large())
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        url = URL(f"https://{authority}{raw_path}", encoded=True)
        return await self._send(request, url, body, tunnel.tls_host)

    async def _check(self, domain: str) -> None:
        try:
            self._gate.check(domain, REQUIREMENT)
        except TimkitError:
            await self._gate.recheck(domain, REQUIREMENT)

    async def _send(
        self, request: web.BaseRequest, url: URL, body: bytes, tls_host: str
    ) -> web.StreamResponse:
        """Send the request to ``url`` over TLS verified for ``tls_host``; relay the answer."""
        host = url.host or tls_host
        assert self._session is not None, "proxy not started"
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self._session.request(
                request.method,
                url,
                headers=end_to_end(request.headers, _NOT_FORWARDED),
                data=body or None,
                allow_redirects=False,
                server_hostname=tls_host if tls_host != host else None,
            ) as upstream:
                self._upstream_seconds.observe(loop.time() - started)
                return await relay_response(request, upstream)
        except TimeoutError:
            self._upstream_errors.inc()
            logger.warning("%s %s: %s timed out", request.method, url.path, host)
            return _error(TimkitError(504, Codes.UPSTREAM, f"{host} did not answer in time"))
        except (aiohttp.ClientError, OSError) as exc:
            self._upstream_errors.inc()
            logger.warning("%s %s: cannot reach %s: %s", request.method, url.path, host, exc)
            return _error(TimkitError(502, Codes.UPSTREAM, f"cannot reach {host}: {exc}"))


def _request_line(head: bytes) -> tuple[str, str]:
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"malformed request line {request_line[:200]!r}")
    return parts[0].upper(), parts[1]
