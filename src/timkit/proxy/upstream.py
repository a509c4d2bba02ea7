"""A small HTTP/1.1 client for relaying requests to one upstream over pooled connections.

The inbound listener relays almost every request to its Synapse unchanged. aiohttp's
``ClientSession`` builds a full request object per request (URL, headers, payload, tracing,
cookies) and writes a request's head and body in two separate writes, so Synapse wakes up
twice per ``PUT``. This client does only what relaying needs, on asyncio streams (it is the
one HTTP client of timkit not built by :mod:`timkit.core.http`, the documented exception):

* the request goes out as bytes the caller already has: request line, header lines, and a
  body that is sent with the head in one write (:meth:`Exchange.send`) or pumped from the
  client's stream while the response is awaited (large and chunked bodies);
* only the response's status line and header lines are parsed (:class:`Head`); the body is
  framed by ``Content-Length``, ``chunked`` or the end of the connection (RFC 9112 §6.3) and
  handed on as it arrives (:meth:`Exchange.read`), interim ``1xx`` responses are skipped;
* connections are kept alive and reused (most recently used first, at most ``limit`` open,
  idle ones older than ``keepalive`` seconds or closed by the peer are dropped). A request
  on a reused connection that the upstream closed before answering is sent once more on a
  new connection if it is idempotent and its body is at hand (RFC 9112 §9.3.1), as
  aiohttp's client does.

Failures raise :class:`UpstreamUnavailable` (cannot connect, connection lost, malformed
response) or :class:`TimeoutError`; the caller decides what the client sees.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
"""Methods that may be sent again after the upstream dropped a reused connection."""
READ_SIZE = 64 * 1024
"""Largest piece of a body read at once (and the streams' buffer limit)."""
MAX_HEAD = 64 * 1024
"""Largest response head accepted."""
_CRLF = b"\r\n"
_NO_BODY_STATUS = frozenset({204, 304})

RawHeaders = Sequence[tuple[bytes, bytes]]
"""Header fields as ``(name, value)`` bytes, names as sent (any case)."""


class UpstreamUnavailable(Exception):
    """The upstream could not be reached, dropped the connection or answered malformed."""


@dataclass(frozen=True, slots=True)
class Head:
    """A response's status line and header fields.

    Attributes:
        status: the status code.
        reason: the reason phrase.
        headers: the header fields in order (names as sent).
        http10: whether the upstream answered as HTTP/1.0.
    """

    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    http10: bool = False

    def get(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class _Connection:
    """One keep-alive connection to the upstream."""

    __slots__ = ("idle_since", "reader", "reused", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.reused = False

    def usable(self, deadline: float) -> bool:
        """Whether it is still open and was idle since ``deadline`` or later."""
        return (
            self.idle_since >= deadline
            and not self.reader.at_eof()
            and not self.writer.transport.is_closing()
        )

    def close(self) -> None:
        self.writer.transport.abort()


class Pool:
    """Keep-alive connections to the upstream at ``url`` (``http://`` or ``https://``).

    Args:
        url: the upstream's base URL (its path is not used).
        limit: most connections open at once; more requests wait for one.
        connect_timeout: seconds a new connection may take.
        keepalive: seconds an idle connection is kept for reuse.
        ssl_context: for ``https://`` (default: the system trust store).
    """

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        connect_timeout: float,
        keepalive: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream URL must be http:// or https://host[:port]: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        default = 443 if self.ssl else 80
        self.authority = (
            (f"[{self.host}]" if ":" in self.host else self.host)
            + ("" if self.port == default else f":{self.port}")
        ).encode("ascii")
        """The ``Host`` for requests that came without one."""
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[_Connection] = []
        self._closed = False

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise UpstreamUnavailable("the connection pool is closed")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        await self._slots.acquire()
        try:
            deadline = asyncio.get_running_loop().time() - self.keepalive
            while self._idle:
                connection = self._idle.pop()
                if connection.usable(deadline):
                    connection.reused = True
                    return connection
                connection.close()
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    limit=READ_SIZE,
                    server_hostname=self.host if self.ssl else None,
                )
        except TimeoutError:
            raise TimeoutError(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as e:
            raise UpstreamUnavailable(f"cannot connect to {self.host}:{self.port}: {e}") from e
        return _Connection(reader, writer)

    def _release(self, connection: _Connection, reuse: bool) -> None:
        if reuse and not self._closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
        else:
            connection.close()
        assert self._slots is not None
        self._slots.release()

    async def close(self) -> None:
        """Close the idle connections; those in use close when their exchange ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def exchange(self) -> Exchange:
        """A new request/response exchange (use as ``async with``)."""
        return Exchange(self)


def request_head(
    method: bytes,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    framing: bytes = b"",
) -> bytes:
    """The bytes of an HTTP/1.1 request head.

    Args:
        method: the method.
        target: the request target as received (path and query, byte for byte).
        headers: the header fields to send, in order.
        framing: an extra header line (``b"Content-Length: 5\\r\\n"`` or
            ``b"Transfer-Encoding: chunked\\r\\n"``), or empty.
    """
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, _CRLF)
    lines += (framing, _CRLF)
    return b"".join(lines)


class Exchange:
    """One request and its response on a pooled connection.

    ``async with pool.exchange() as x``: :meth:`send` (or :meth:`send_streamed`) the
    request, then :meth:`read` the body until it returns ``b""``. Leaving the block returns
    the connection to the pool if the response was read to its end, else closes it.
    """

    __slots__ = (
        "_chunked",
        "_keep",
        "_pump",
        "_remaining",
        "_until_close",
        "connection",
        "head",
        "pool",
    )

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.connection: _Connection | None = None
        self.head: Head | None = None
        self._remaining = 0
        """Bytes left of the body (of the current chunk when chunked); -1 at the end."""
        self._chunked = False
        self._until_close = False
        self._keep = True
        """Whether the connection may serve another request once the body is read."""
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Exchange:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        reuse = self._remaining == -1 and self._keep
        pump = self._pump
        if pump is not None:
            if not pump.done():  # answered before the whole body was sent
                pump.cancel()
                reuse = False
            elif pump.cancelled() or pump.exception() is not None:
                reuse = False  # (the exception is retrieved: it shows in the response)
        connection, self.connection = self.connection, None
        if connection is not None:
            self.pool._release(connection, reuse)

    async def send(self, method: bytes, head: bytes, body: bytes = b"") -> Head:
        """Send ``head`` and ``body`` in one write; the response head.

        Raises:
            UpstreamUnavailable: when the upstream cannot be reached or breaks off before
                answering (after one new attempt for an idempotent request on a reused
                connection), or answers malformed.
            TimeoutError: when connecting times out.
        """
        data = head + body if body else head
        while True:
            connection = await self._connect()
            connection.writer.write(data)
            try:
                return await self._read_head(method)
            except UpstreamUnavailable:
                if not (connection.reused and method in IDEMPOTENT):
                    raise
                self._drop()

    async def send_streamed(
        self, method: bytes, head: bytes, body: AsyncIterator[bytes], chunked: bool
    ) -> Head:
        """Send ``head``, then ``body`` piece by piece (chunk-encoded if ``chunked``) while
        the response head is awaited; the response head.

        If the client's body fails while the head is awaited (it stalled past the listener's
        read time, or the client went away), the upstream is not waited for any longer: the
        body's exception is raised and the half-sent request's connection is dropped.

        Raises:
            UpstreamUnavailable, TimeoutError: as :meth:`send` (no second attempt: the body
                is consumed).
            Exception: what reading the client's body raised (e.g.
                ``timkit.core.web.RequestBodyTimeout``).
        """
        connection = await self._connect()
        connection.writer.write(head)
        pump = self._pump = asyncio.create_task(_pump(connection.writer, body, chunked))
        answer = asyncio.ensure_future(self._read_head(method))
        try:
            await asyncio.wait((pump, answer), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            answer.cancel()
            raise
        if not answer.done():
            failure = pump.exception()
            if failure is not None:
                answer.cancel()
                raise failure
        return await answer

    async def _connect(self) -> _Connection:
        self.connection = await self.pool._acquire()
        return self.connection

    def _drop(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            self.pool._release(connection, False)

    async def _read_head(self, method: bytes) -> Head:
        assert self.connection is not None
        reader = self.connection.reader
        try:
            while True:
                data = await reader.readuntil(b"\r\n\r\n")
                head = _parse_head(data)
                if head.status >= 200 or head.status == 101:
                    break
        except asyncio.IncompleteReadError as e:
            raise UpstreamUnavailable(
                "the upstream closed the connection before answering"
                if not e.partial
                else "the upstream closed the connection inside the response head"
            ) from None
        except asyncio.LimitOverrunError:
            raise UpstreamUnavailable(f"response head larger than {MAX_HEAD} bytes") from None
        except (ConnectionError, OSError) as e:
            raise UpstreamUnavailable(f"connection to the upstream failed: {e}") from e
        self.head = head
        self._frame(method, head)
        return head

    def _frame(self, method: bytes, head: Head) -> None:
        """Work out how the body of ``head`` ends (RFC 9112 §6.3) and whether the connection
        can be used again (RFC 9112 §9.3)."""
        encoding = length = None
        connection = b""
        for name, value in head.headers:
            lower = name.lower()
            if lower == b"transfer-encoding":
                encoding = value
            elif lower == b"content-length":
                if length is not None and length != value:
                    raise UpstreamUnavailable("conflicting Content-Length headers")
                length = value
            elif lower == b"connection":
                connection += b"," + value.lower()
        self._keep = (
            b"keep-alive" in connection if head.http10 else b"close" not in connection
        ) and head.status != 101
        if method == b"HEAD" or head.status in _NO_BODY_STATUS or head.status < 200:
            self._remaining = -1
        elif encoding is not None:
            self._remaining = 0
            if encoding.lower().rsplit(b",", 1)[-1].strip() == b"chunked":
                self._chunked = True
                self._keep = self._keep and length is None  # both: a smuggling attempt
            else:
                self._until_close = True
        elif length is not None:
            if not length.isdigit():
                raise UpstreamUnavailable(f"invalid Content-Length {length!r}")
            self._remaining = int(length) or -1
        else:
            self._until_close = True
        if self._until_close:
            self._keep = False

    @property
    def content_length(self) -> int | None:
        """The body's length if the response announced it, else None."""
        if self._remaining == -1:
            return 0
        if self._chunked or self._until_close or self.head is None:
            return None
        return self._remaining

    async def read(self) -> bytes:
        """The next piece of the response body; ``b""`` at its end.

        Raises:
            UpstreamUnavailable: when the upstream breaks off inside the body or frames it
                wrongly.
        """
        if self._remaining == -1:
            return b""
        assert self.connection is not None
        reader = self.connection.reader
        try:
            if self._chunked:
                return await self._read_chunked(reader)
            if self._until_close:
                data = await reader.read(READ_SIZE)
                if not data:
                    self._remaining = -1
                return data
            size = self._remaining
            if size <= READ_SIZE:
                data = await reader.readexactly(size)
            else:
                data = await reader.read(READ_SIZE)
                if not data:
                    raise asyncio.IncompleteReadError(b"", size)
            self._remaining -= len(data)
            if not self._remaining:
                self._remaining = -1
            return data
        except asyncio.IncompleteReadError:
            raise UpstreamUnavailable(
                "the upstream closed the connection inside the body"
            ) from None
        except asyncio.LimitOverrunError:
            raise UpstreamUnavailable("malformed chunked response body") from None
        except (ConnectionError, OSError) as e:
            raise UpstreamUnavailable(f"connection to the upstream failed: {e}") from e

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        if self._remaining == 0:
            line = await reader.readuntil(_CRLF)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise UpstreamUnavailable(f"invalid chunk size line {line[:40]!r}") from None
            if size < 0:
                raise UpstreamUnavailable(f"invalid chunk size line {line[:40]!r}")
            if size == 0:
                while await reader.readuntil(_CRLF) != _CRLF:  # trailer fields: dropped
                    pass
                self._remaining = -1
                return b""
            if size <= READ_SIZE:  # the common case: the whole chunk and its CRLF at once
                data = await reader.readexactly(size + 2)
                if data[-2:] != _CRLF:
                    raise UpstreamUnavailable("chunk not followed by CRLF")
                return data[:-2]
            self._remaining = size
        data = await reader.read(min(self._remaining, READ_SIZE))
        if not data:
            raise asyncio.IncompleteReadError(b"", self._remaining)
        self._remaining -= len(data)
        if self._remaining == 0 and await reader.readexactly(2) != _CRLF:
            raise UpstreamUnavailable("chunk not followed by CRLF")
        return data


async def _pump(writer: asyncio.StreamWriter, body: AsyncIterator[bytes], chunked: bool) -> None:
    """Write ``body`` to ``writer`` (chunk-encoded and terminated if ``chunked``)."""
    async for piece in body:
        if not piece:
            continue
        if chunked:
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        else:
            writer.write(piece)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _parse_head(data: bytes) -> Head:
    """A response head (status line and header lines, ending in an empty line)."""
    lines = data[:-4].split(_CRLF)
    status_line = lines[0]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise UpstreamUnavailable(f"malformed status line {status_line[:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):  # obsolete line folding (RFC 9112 §5.2)
            if not headers:
                raise UpstreamUnavailable("malformed response head")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise UpstreamUnavailable(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    return Head(int(parts[1]), reason, headers, parts[0] == b"HTTP/1.0")
