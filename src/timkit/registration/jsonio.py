"""JSON in and out for the RD's API: size-limited object bodies, typed fields, orjson answers.

:func:`json_response` is :func:`timkit.core.web.json_response`, re-exported for the RD's modules.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from timkit.core import jsonbody
from timkit.core.errors import Codes, TimkitError
from timkit.core.web import json_response as json_response

MAX_BODY = 64 * 1024
BODY_CODES = {problem: str(Codes.BAD_JSON) for problem in jsonbody.Problem} | {
    jsonbody.Problem.TOO_LARGE: str(Codes.TOO_LARGE)
}
"""The RD's error codes for unusable JSON bodies (``M_BAD_JSON``; 413 ``M_TOO_LARGE``)."""
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def read_json(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty body when ``optional``).

    Raises:
        TimkitError: 413 ``M_TOO_LARGE`` over :data:`MAX_BODY`; 400 ``M_BAD_JSON`` naming
            why the body is unusable (not UTF-8, not JSON and where, nested too deep, no
            object; see ``timkit.core.jsonbody``).
    """
    try:
        body: dict[str, Any] = await jsonbody.read_json(request, MAX_BODY, optional=optional)
    except jsonbody.JsonBodyError as e:
        raise e.to_error(BODY_CODES) from None
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
