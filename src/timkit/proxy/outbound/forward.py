"""The outbound forward proxy: an HTTP ``CONNECT`` router for Synapse's federation traffic.

Synapse resolves a server name itself (``/.well-known/matrix/server`` first) and then asks
its ``https_proxy`` for ``CONNECT host:port``. This proxy maps ``host`` to an upstream
address from its route file (``routes_file``, re-read when it changes, so services can join
and leave a running federation) or its static ``routes``, so a whole federation of realistic
domain names runs on loopback with no DNS. The TLS session inside the tunnel stays end to end
between the two homeservers.

Besides ``CONNECT`` it answers ``GET /health`` with 200 for the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from timkit.core.names import NameTable, split_target
from timkit.proxy.config import ForwardProxyConfig, Unrouted

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
PIPE_CHUNK = 64 * 1024


class BadRequest(Exception):
    """The client sent something that is not an HTTP/1.x proxy request."""


def _response(status: str, body: str = "") -> bytes:
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(data)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + data


def parse_authority(authority: str) -> tuple[str, int]:
    """Split a CONNECT target ``host:port`` (``[v6]:port`` too) into host and port.

    Raises:
        BadRequest: when the target has no valid port.
    """
    host, sep, port = authority.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadRequest(f"CONNECT target must be host:port, got {authority!r}")
    return host.strip("[]").lower(), int(port)


class ForwardProxy:
    """Serves CONNECT tunnels according to ``config``.

    Args:
        config: listen address, routes and policy for unrouted names.
    """

    def __init__(self, config: ForwardProxyConfig) -> None:
        self._config = config
        self._names = NameTable(config.routes_file, config.routes)
        self._server: asyncio.Server | None = None
        self._tunnels: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port actually bound (useful when configured as 0)."""
        assert self._server is not None, "proxy not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await asyncio.start_server(
            self._handle, self._config.bind, self._config.port, limit=MAX_HEADER_BYTES
        )
        logger.info("forward proxy listening on %s:%d", self._config.bind, self.port)

    async def close(self) -> None:
        """Stop accepting, then end open tunnels."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tunnels):
            task.cancel()
        await asyncio.gather(*self._tunnels, return_exceptions=True)

    def route(self, host: str, port: int) -> tuple[str, int] | None:
        """Where a CONNECT to ``host:port`` goes, or ``None`` if it must be refused.

        The route file is consulted on every call (a ``stat``; re-read only when it changed).
        """
        target = self._names.resolve(host)
        if target is not None:
            return split_target(target)
        if self._config.unrouted is Unrouted.DIRECT:
            return host, port
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tunnels.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tunnels.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, target = await self._read_request(reader)
            if method == "GET" and target == "/health":
                writer.write(_response("200 OK", "OK"))
                return
            if method != "CONNECT":
                writer.write(_response("405 Method Not Allowed", "only CONNECT is supported\n"))
                return
            host, port = parse_authority(target)
        except BadRequest as exc:
            writer.write(_response("400 Bad Request", f"{exc}\n"))
            return
        upstream_addr = self.route(host, port)
        if upstream_addr is None:
            logger.warning("refused CONNECT %s:%d: no route", host, port)
            writer.write(_response("403 Forbidden", f"no route to {host}\n"))
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*upstream_addr), self._config.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            logger.warning("CONNECT %s:%d via %s failed: %s", host, port, upstream_addr, exc)
            writer.write(_response("502 Bad Gateway", f"cannot reach {host}:{port}\n"))
            return
        logger.debug("tunnel %s:%d -> %s:%d", host, port, *upstream_addr)
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise BadRequest("request head too large") from None
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(f"malformed request line {request_line!r}")
        return parts[0].upper(), parts[1]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until EOF, then half-close ``writer``."""
    try:
        while chunk := await reader.read(PIPE_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        writer.close()
