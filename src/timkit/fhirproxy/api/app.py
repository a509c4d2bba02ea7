"""HTTP edge of the FHIR-Proxy: route table, error rendering per protocol, audit of writes.

The proxy speaks three protocols, and each error is rendered here and only here:

* OAuth (RFC 6749/6750) on the token endpoints: ``{"error", "error_description"}`` plus
  ``WWW-Authenticate`` on 401;
* the VZD ``Error{message, errors}`` on ``/tim-provider-services`` (outside its FHIR part);
* FHIR ``OperationOutcome`` everywhere else (``/search``, ``/owner``, ``/tim-search``,
  ``/tim-provider-services/FHIR``).

Every request target is parsed as the FHIR-Directory parses it
(:func:`timkit.core.request_target.parse_target`, via :func:`fhir_http.request_target`)
before any handler runs; a target that cannot be read unambiguously (control characters,
dot segments, ``//``, bad escapes, raw non-ASCII) is a 400 in the path's protocol.

Every write (POST, PUT, PATCH, DELETE outside the token endpoints) is audited with the
caller, the action, the target and the resulting status, whether it succeeded or not. Every
response carries ``X-Content-Type-Options: nosniff`` (and HSTS over TLS); 500s never carry
internals (ML-123682, OWASP A05).
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from aiohttp import web

from timkit.core.errors import TimkitError
from timkit.core.web import (
    FHIR_INTERNAL,
    Handler,
    edge_middleware,
    fhir_http_code,
    health,
    json_response,
)
from timkit.fhirproxy.api import (
    auth_routes,
    fhir_http,
    fhir_routes,
    passport_routes,
    provider_services_routes,
)
from timkit.fhirproxy.api.token_gate import ACTOR_KEY
from timkit.fhirproxy.context import CONTEXT_KEY, FhirProxyContext, context
from timkit.fhirproxy.ldap import sync as ldap_sync

log = logging.getLogger(__name__)

OAUTH_PATHS = frozenset(
    {
        "/token",
        "/ti-provider-authenticate",
        "/tim-authenticate",
        "/owner-authenticate",
        "/signin-gematik-idp-dienst",
    }
)
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Protocol(Enum):
    """How errors are rendered on a path."""

    OAUTH = "oauth"
    VZD = "vzd"
    FHIR = "fhir"


def protocol_of(path: str) -> Protocol:
    """The protocol a path speaks (see the module docstring)."""
    if path in OAUTH_PATHS:
        return Protocol.OAUTH
    if path.startswith("/tim-provider-services") and not path.startswith(
        "/tim-provider-services/FHIR"
    ):
        return Protocol.VZD
    return Protocol.FHIR


def render_error(request: web.Request, error: TimkitError) -> web.Response:
    """``error`` in the protocol of the request's path."""
    path = request.path
    protocol = protocol_of(path)
    headers: dict[str, str] = {}
    if error.status == 401:
        description = error.message.replace("\\", "").replace('"', "'")
        headers["WWW-Authenticate"] = (
            f'Bearer error="invalid_token", error_description="{description}"'
            if protocol is not Protocol.OAUTH or path != "/token"
            else 'Basic realm="vzd"'
        )
    if error.status == 429 and "retry_after" in error.extra:
        headers["Retry-After"] = str(error.extra["retry_after"])
    if protocol is Protocol.OAUTH:
        body = error.to_oauth()
        body.pop("retry_after", None)
        return json_response(body, error.status, headers=headers)
    if protocol is Protocol.VZD:
        body = {"message": error.describe(), "errors": list(error.extra.get("errors", []))}
        return json_response(body, error.status, headers=headers)
    return json_response(
        error.to_operation_outcome(),
        error.status,
        content_type="application/fhir+json",
        headers=headers,
    )


_errors = edge_middleware(
    render_error, http_code=fhir_http_code, internal=FHIR_INTERNAL, logger=log
)


@web.middleware
async def _edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Audit each write, set the security headers; outside :data:`_errors`, so it sees the
    rendered error responses too."""
    response = await handler(request)
    if request.method in _WRITES and request.path not in OAUTH_PATHS:
        await _audit(request, response.status)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


@web.middleware
async def _parsed_target(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a target the directory could read differently (400) before any handler runs."""
    fhir_http.request_target(request)
    return await handler(request)


async def _audit(request: web.Request, status: int) -> None:
    ctx = context(request)
    actor = str(request.get(ACTOR_KEY, "anonymous"))
    action = f"{request.method} {request.path}"
    target = request.path_qs
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(
            ctx.executor, ctx.audit.record, actor, action, target, status, ""
        )
    except Exception:
        log.exception("could not write the audit record for %s by %s", action, actor)


async def jwks(request: web.Request) -> web.Response:
    """The public keys that sign this proxy's access tokens."""
    return json_response(context(request).tokens.jwks())


def create_app(ctx: FhirProxyContext) -> web.Application:
    """The aiohttp application of the FHIR-Proxy on ``ctx``."""
    app = web.Application(
        middlewares=[_edge, _errors, _parsed_target], client_max_size=16 * 1024 * 1024
    )
    app[CONTEXT_KEY] = ctx
    app.router.add_get("/health", health)
    app.router.add_get("/.well-known/jwks.json", jwks)
    auth_routes.setup(app)
    provider_services_routes.setup(app)
    fhir_routes.setup(app)
    if ctx.config.passport.enabled:
        passport_routes.setup(app)
    ldap_sync.setup(app)
    return app
