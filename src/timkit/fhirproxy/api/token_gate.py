"""The FHIR-Proxy's token gate at its edge: security headers read once, Bearer tokens,
and :func:`authorize` (the kind of access token a route needs; 401 invalid, 403 wrong kind,
400 for a header given twice). The tokens themselves are
:mod:`timkit.fhirproxy.auth.access_tokens`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from timkit.core.errors import TimkitError
from timkit.core.request_target import UnparsableRequest, single_header
from timkit.fhirproxy.auth.access_tokens import SPECS, Kind, TokenService

ACTOR_KEY = web.RequestKey("timkit.actor", str)
"""Request key holding who is calling (``provider:<id>``, ``owner:<tid>``, ``user:<mxid>``)."""


CLAIMS_KEY = web.RequestKey("timkit.claims", dict[str, Any])
"""Request key holding the verified token claims."""


def security_header(request: web.Request, name: str) -> str | None:
    """The one value of header ``name`` (``Authorization`` …); None when absent.

    Raises:
        TimkitError: 400 when the header is given more than once (which copy counts would
            be a guess).
    """
    try:
        return single_header(request.headers, name)
    except UnparsableRequest as e:
        raise TimkitError(400, "invalid_request", str(e)) from None


def bearer(request: web.Request, requirement: str) -> str:
    """The Bearer token of ``request``; 401 when absent, 400 when given twice."""
    header = security_header(request, "Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TimkitError(
            401,
            "invalid_token",
            "an Authorization: Bearer access token is required",
            requirement=requirement,
        )
    return token.strip()


def authorize(request: web.Request, tokens: TokenService, kind: Kind) -> dict[str, Any]:
    """Check the request's Bearer token is a valid ``kind`` token; return its claims.

    Sets ``request[ACTOR_KEY]`` (for the audit log) and ``request[CLAIMS_KEY]``.
    """
    claims = tokens.check(bearer(request, SPECS[kind].requirement), kind)
    request[ACTOR_KEY] = f"{SPECS[kind].actor_prefix}:{claims['sub']}"
    request[CLAIMS_KEY] = claims
    return claims
