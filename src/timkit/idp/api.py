"""HTTP edge of the IDP stand-in: routes, parameter parsing, error rendering, headers.

Routes::

    GET  /health                              liveness
    GET  /.well-known/openid-configuration    discovery document
    GET  /jwks                                the ID token signing key (JWKS)
    GET  /auth                                authorization request → card-selection page
    POST /auth                                the chosen card → 302 to the client with a code
    POST /token                               code + PKCE verifier → ID token

``POST /auth`` takes form fields in one of two shapes:

* from the card-selection page: ``request_id`` (hidden field) and ``card``, or ``cancel``;
* from a script, without a browser: the authorization request's parameters themselves
  (``client_id``, ``redirect_uri``, ``response_type``, ``scope``, ``state``, ``nonce``,
  ``code_challenge``, ``code_challenge_method``) plus ``card``, checked as on ``GET /auth``.

Errors are rendered here only: as an HTML page on ``/auth`` before the redirect URI is
trusted, as a redirect to the client after (:class:`~timkit.idp.handlers.AuthorizationError`),
as an OAuth JSON error (RFC 6749 §5.2) everywhere else. Every response carries
``nosniff``, a CSP with ``frame-ancestors 'none'`` and HSTS; ``/auth`` and ``/token``
responses ``Cache-Control: no-store``. Anyone who reaches ``/auth`` may sign in with any
card: this is a stand-in for tests and the local run, never for real identities.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable
from urllib.parse import unquote_plus

from aiohttp import web

from timkit.core.errors import TimkitError
from timkit.core.web import Handler, edge_middleware, health, html_response, json_response
from timkit.idp import pages
from timkit.idp.handlers import AuthorizationError, ClientCredentials, Provider

log = logging.getLogger(__name__)

PROVIDER_KEY = web.AppKey("idp.provider", Provider)
LANG_KEY = web.RequestKey("idp.lang", str)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Strict-Transport-Security": "max-age=31536000",
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_NO_STORE_PATHS = frozenset({"/auth", "/token"})


def provider(request: web.Request) -> Provider:
    """The provider of the app serving ``request``."""
    return request.app[PROVIDER_KEY]


def redirect(location: str) -> web.Response:
    """302 to ``location``."""
    return web.Response(status=302, headers={"Location": location})


def render_error(request: web.Request, error: TimkitError) -> web.Response:
    """``error`` as the path's protocol wants it (see the module docstring)."""
    if isinstance(error, AuthorizationError):
        return redirect(error.location(provider(request).issuer))
    if request.path == "/auth":
        lang = request.get(LANG_KEY, "de")
        return html_response(pages.error_page(lang, error.describe()), error.status)
    headers = {"WWW-Authenticate": 'Basic realm="idp"'} if error.status == 401 else None
    return json_response(error.to_oauth(), error.status, headers)


_errors = edge_middleware(
    render_error,
    http_code=lambda _status: "invalid_request",
    internal=TimkitError(500, "server_error", "internal server error"),
    logger=log,
    headers=SECURITY_HEADERS,
)


@web.middleware
async def _edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``Cache-Control: no-store`` on the OAuth endpoints; outside :data:`_errors`."""
    response = await handler(request)
    if request.path in _NO_STORE_PATHS:
        response.headers.update(NO_STORE)
    return response


def single_values(params: Iterable[tuple[str, object]]) -> dict[str, str]:
    """Query or form ``params`` (name, value pairs) as a plain dict.

    Raises:
        TimkitError: 400 ``invalid_request`` naming a parameter given more than once
            (RFC 6749 §3.1) or one that is not text.
    """
    values: dict[str, str] = {}
    for name, value in params:
        if name in values:
            raise TimkitError(400, "invalid_request", f"{name} is given more than once")
        if not isinstance(value, str):
            raise TimkitError(400, "invalid_request", f"{name} is not a text field")
        values[name] = value
    return values


async def _form(request: web.Request) -> dict[str, str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise TimkitError(
            400, "invalid_request", "the body must be application/x-www-form-urlencoded"
        )
    return single_values((await request.post()).items())


def basic_credentials(request: web.Request) -> ClientCredentials | None:
    """Client credentials from ``Authorization: Basic`` (RFC 6749 §2.3.1), if present.

    Raises:
        TimkitError: 401 ``invalid_client`` for a malformed header.
    """
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise TimkitError(401, "invalid_client", "client authentication must use Basic")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise TimkitError(401, "invalid_client", "the Basic credentials are malformed") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise TimkitError(401, "invalid_client", "the Basic credentials are malformed")
    return ClientCredentials(unquote_plus(client_id), unquote_plus(secret))


async def discovery(request: web.Request) -> web.Response:
    """The OpenID Connect discovery document."""
    return json_response(provider(request).discovery())


async def jwks(request: web.Request) -> web.Response:
    """The public ID token signing key."""
    return json_response(provider(request).key.jwks())


async def authorize_page(request: web.Request) -> web.Response:
    """``GET /auth``: check the authorization request, show the card selection."""
    lang = pages.language(request.query.get("lang"), request.headers.get("Accept-Language"))
    request[LANG_KEY] = lang
    idp = provider(request)
    auth = idp.check_request(single_values(request.query.items()))
    page = pages.selection_page(lang, idp.remember(auth), auth.client_id, auth.scope, idp.cards)
    return html_response(page)


async def authorize_choice(request: web.Request) -> web.Response:
    """``POST /auth``: the chosen card (or cancel) → redirect to the client."""
    request[LANG_KEY] = pages.language(
        request.query.get("lang"), request.headers.get("Accept-Language")
    )
    idp = provider(request)
    form = await _form(request)
    if "request_id" in form:
        auth = idp.resume(form["request_id"])
    else:
        auth = idp.check_request({k: v for k, v in form.items() if k not in ("card", "cancel")})
    if "cancel" in form:
        return redirect(idp.deny(auth))
    return redirect(idp.choose(auth, form.get("card", "")))


async def token(request: web.Request) -> web.Response:
    """``POST /token``: redeem a code for the ID token."""
    credentials = basic_credentials(request)
    form = await _form(request)
    return json_response(provider(request).redeem(form, credentials))


def create_app(idp: Provider) -> web.Application:
    """The aiohttp application of the IDP stand-in."""
    app = web.Application(middlewares=[_edge, _errors], client_max_size=64 * 1024)
    app[PROVIDER_KEY] = idp
    app.router.add_get("/health", health)
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/auth", authorize_page)
    app.router.add_post("/auth", authorize_choice)
    app.router.add_post("/token", token)
    return app
