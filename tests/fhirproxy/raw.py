"""A request target sent byte for byte: HTTP clients normalise what an attacker would not.

httpx and aiohttp re-quote or resolve ``%2e%2e``, ``//`` and raw bytes in a URL; an attack
on the FHIR-Proxy's path handling has to arrive exactly as written, so these tests write the
request line themselves.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawResponse:
    """What came back: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        """The media type of ``Content-Type`` (parameters dropped)."""
        return self.headers.get("content-type", "").split(";")[0].strip()


async def raw_request(
    base: str,
    target: bytes | str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    *,
    method: str = "GET",
    body: bytes = b"",
    ssl_context: ssl.SSLContext | None = None,
) -> RawResponse:
    """Send ``method target HTTP/1.1`` to ``base`` (``http://`` or ``https://host:port``).

    ``headers`` as pairs may name a header twice, as an attacker's request would.
    The connection is closed after the answer (``Connection: close``), so the body is
    everything until EOF.
    """
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    context = ssl_context if parts.scheme == "https" else None
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        line = target.encode("latin-1") if isinstance(target, str) else target
        head = [method.encode() + b" " + line + b" HTTP/1.1", f"Host: {host}:{port}".encode()]
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        for name, value in pairs:
            head.append(f"{name}: {value}".encode("latin-1"))
        head += [b"Connection: close", f"Content-Length: {len(body)}".encode()]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    found = {}
    for header in header_lines:
        name, _, value = header.partition(":")
        found[name.strip().lower()] = value.strip()
    if found.get("transfer-encoding", "").lower() == "chunked":
        payload = _unchunk(payload)
    return RawResponse(int(status_line.split()[1]), found, payload)


def _unchunk(data: bytes) -> bytes:
    body = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body += data[:size]
        data = data[size + 2 :]
    return bytes(body)
