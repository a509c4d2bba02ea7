"""JSON in and out for the RD's API: size-limited object bodies, typed fields, orjson answers.

:func:`json_response` is :func:`timkit.core.web.json_response`, re-exported for the RD's modules.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.core.web import json_response as json_response
from timkit.core.web import read_stream

MAX_BODY = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def read_json(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty body when ``optional``).

    Raises:
        TimkitError: 400 ``M_BAD_JSON`` for a body that is too large, not JSON or no object.
    """
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise TimkitError(413, "M_TOO_LARGE", f"request body over {MAX_BODY} bytes")
    try:
        raw = await read_stream(request.content, MAX_BODY)
    except ValueError:
        raise TimkitError(413, "M_TOO_LARGE", f"request body over {MAX_BODY} bytes") from None
    if not raw.strip() and optional:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise TimkitError(400, Codes.BAD_JSON, "request body is not JSON") from e
    if not isinstance(body, dict):
        raise TimkitError(400, Codes.BAD_JSON, "request body must be a JSON object")
    return body


def text(body: dict[str, Any], name: str, *, required: bool = True, limit: int = 1024) -> str:
    """The string field ``name`` of ``body`` ("" when optional and absent).

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` naming the field.
    """
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise TimkitError(
            400, Codes.INVALID_PARAM, f"{name} must be a non-empty string (at most {limit})"
        )
    return value


def obj(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The object field ``name`` of ``body``.

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` naming the field.
    """
    value = body.get(name)
    if not isinstance(value, dict):
        raise TimkitError(400, Codes.INVALID_PARAM, f"{name} must be a JSON object")
    return value
