"""Relaying HTTP between a client and an upstream unchanged: the proxy's inbound listener
(client → Synapse) and its forward proxy (Synapse → another service) share this.

* Headers: everything end to end; hop-by-hop headers (RFC 9110 §7.6.1) and those named in
  ``Connection`` are dropped (:func:`end_to_end`).
* Response bodies: read whole while they fit :data:`BUFFER_LIMIT` (Synapse answers JSON
  chunked, without a length, so the size is only known at the end) and sent with a
  ``Content-Length`` in one write together with the head; a larger body is streamed on
  from what was read. If the upstream breaks off after the head is out, the client
  connection is cut: the only honest signal left.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that belong to one connection and are never relayed."""
BUFFER_LIMIT = 256 * 1024
"""Response bodies up to this size are relayed in one write with a ``Content-Length``."""
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
"""Headers aiohttp's client would add on its own: a relayed request must not gain them."""
_NO_BODY_STATUS = frozenset({204, 304})
NOT_RELAYED = HOP_BY_HOP | {"content-length"}
"""Response headers not relayed (the proxy sets its own ``Content-Length``)."""

log = logging.getLogger(__name__)


def end_to_end(headers: Mapping[str, str], drop: frozenset[str] = HOP_BY_HOP) -> CIMultiDict[str]:
    """``headers`` minus ``drop`` (lower-case names) and minus what ``Connection`` names."""
    connection = headers.get("Connection")
    if connection:
        drop = drop | {token.strip().lower() for token in connection.split(",")}
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


async def relay_response(
    request: web.BaseRequest, upstream: aiohttp.ClientResponse
) -> web.StreamResponse:
    """Send ``upstream``'s status, end-to-end headers and body to the client of ``request``."""
    response = web.StreamResponse(
        status=upstream.status,
        reason=upstream.reason,
        headers=end_to_end(upstream.headers, NOT_RELAYED),
    )
    if request.method == "HEAD" or upstream.status in _NO_BODY_STATUS:
        if "Content-Length" in upstream.headers:
            response.headers["Content-Length"] = upstream.headers["Content-Length"]
        await response.prepare(request)
        await response.write_eof()
        return response
    length = upstream.content_length
    try:
        head = bytearray()
        while length is None or length <= BUFFER_LIMIT:
            chunk = await upstream.content.readany()
            if not chunk:
                # a web.Response goes out with its head in one write (a StreamResponse
                # writes the head on its own as soon as it is prepared)
                return web.Response(
                    status=upstream.status,
                    reason=upstream.reason,
                    headers=response.headers,
                    body=bytes(head),
                )
            head += chunk
            if len(head) > BUFFER_LIMIT:
                break
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        await response.write(bytes(head))
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        if not response.prepared:
            raise
        log.warning("relaying %s broke off after the head: %s", request.path, exc)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
