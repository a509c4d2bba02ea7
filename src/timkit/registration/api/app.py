"""HTTP edge of the Registrierungs-Dienst: route table, error rendering, security headers.

Two kinds of callers, and each error is rendered here and only here:

* machines (the JSON API under ``/api/``, the proxies' ``/federation`` and ``/vzd/invite``):
  ``{"errcode", "error"}`` as Matrix does, the message naming the rule;
* people (the web frontend): an HTML error page in the user's language.

Errors go through :func:`timkit.core.web.guard` like every timkit edge: an unknown path or
a wrong method is 404 / 405 ``M_UNRECOGNIZED`` (405 with ``Allow``), a body over the limit 413
``M_TOO_LARGE``, anything unexpected a 500 ``M_UNKNOWN`` without internals; each rendered per
caller kind as above.

Every response carries ``X-Content-Type-Options: nosniff``, ``Referrer-Policy``, a strict
``Content-Security-Policy`` and HSTS over TLS; 500s never carry internals.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import urlsplit

from aiohttp import web

from timkit.core.errors import TimkitError
from timkit.core.web import (
    Handler,
    edge_middleware,
    health,
    json_response,
    set_headers,
)
from timkit.registration.accounts import ratelimit
from timkit.registration.api import invite, list_route, org, pages, services, token
from timkit.registration.api.pages import JSON_KEY
from timkit.registration.context import CONTEXT_KEY, RegistrationContext
from timkit.registration.verification.handlers import VERIFIERS_KEY, verifiers_for
from timkit.registration.web.render import ENV_KEY, environment, error_page

log = logging.getLogger(__name__)

MACHINE_PREFIXES = ("/api/", "/federation", "/vzd/", "/health")
CSP_KEY = web.AppKey("registration.csp", str)


def is_machine_path(path: str) -> bool:
    """Whether ``path`` belongs to the JSON side (errors as JSON, not HTML)."""
    return path.startswith(MACHINE_PREFIXES)


def render_error(request: web.Request, error: TimkitError) -> web.StreamResponse:
    """``error`` as JSON for machine paths (and API-started OIDC callbacks), else as the
    frontend's HTML error page in the user's language."""
    response: web.StreamResponse
    if is_machine_path(request.path) or request.get(JSON_KEY):
        response = json_response(error.to_matrix(), error.status)
    elif ENV_KEY in request.app:
        response = error_page(request, error)
    else:
        response = web.Response(
            text=f"<!doctype html><title>Fehler</title><p>{html.escape(error.describe())}</p>",
            status=error.status,
            content_type="text/html",
        )
    set_headers(response, error.headers)
    return response


errors_middleware = edge_middleware(render_error, logger=log)
"""Render errors per caller kind (:func:`render_error`) through
:func:`timkit.core.web.guard`; internals of unexpected errors stay in the log."""


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(ctx: RegistrationContext) -> str:
    """The CSP of every response: scripts, styles and images from the RD only; forms may
    post to the RD and redirect on to the IDP (Verfahren 1 starts with a form POST)."""
    idp = ctx.config.idp
    targets = {_origin(u) for u in (idp.issuer, idp.authorization_endpoint) if u} - {""}
    form_action = " ".join(["'self'", *sorted(targets)])
    return (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        f"frame-ancestors 'none'; form-action {form_action}"
    )


def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    response.headers.setdefault("Content-Security-Policy", request.app[CSP_KEY])
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every response, redirects included."""
    try:
        response = await handler(request)
    except web.HTTPException as e:
        _secure_headers(request, e)
        raise
    _secure_headers(request, response)
    return response


def create_app(ctx: RegistrationContext) -> web.Application:
    """The RD's aiohttp application over ``ctx``."""
    app = web.Application(middlewares=[headers_middleware, errors_middleware])
    app[CONTEXT_KEY] = ctx
    app[CSP_KEY] = content_security_policy(ctx)
    app[ENV_KEY] = environment()
    app[VERIFIERS_KEY] = verifiers_for(ctx)
    ratelimit.setup(app)
    app.router.add_get("/health", health)
    org.setup(app)
    pages.setup(app)
    list_route.setup(app)
    invite.setup(app)
    token.setup(app)
    services.setup(app)
    return app
