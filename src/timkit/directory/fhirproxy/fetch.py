"""Small helpers for the FHIR-Proxy's outbound calls (homeservers, IDPs): bounded reads."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The response body; ValueError when it is longer than ``limit`` bytes."""
    body = await response.content.read(limit + 1)
    if len(body) > limit:
        raise ValueError(f"response larger than {limit} bytes")
    return body


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` parsed as a JSON object, or None when it is not one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None
