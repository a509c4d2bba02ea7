"""OAuth and Auth-Service of the FHIR-Proxy: the endpoints that issue access tokens.

==========================================  =====================================================
request                                     response (200, ``application/json``)
==========================================  =====================================================
``POST /token`` (form, client credentials)  ``{access_token, token_type, expires_in, scope}``
``GET /ti-provider-authenticate`` (Bearer)  ``{access_token, client_id, token_type, expires_in}``
``GET /tim-authenticate?mxId=<server>``     ``{access_token, token_type, expires_in}``
``GET /owner-authenticate`` (Bearer)        ``{access_token, token_type, expires_in}``
``GET /owner-authenticate[?idp=<issuer>]``  302 to the IDP (no Authorization header)
``GET /signin-gematik-idp-dienst``          ``{access_token, token_type, expires_in}``
==========================================  =====================================================

``token_type`` is always ``Bearer``; responses carry ``Cache-Control: no-store``.

* ``/token`` (seed 002 §4.2.3, RFC 6749 §4.4): ``grant_type=client_credentials``; the client
  authenticates with HTTP Basic (RFC 6749 §2.3.1, form-urlencoded id and secret) *or* the form
  fields ``client_id``/``client_secret``, not both. ``scope``, when given, must be
  ``ti-provider``. → ti-provider-accesstoken, ``sub`` = client id. Errors: 400
  ``invalid_request`` / ``unsupported_grant_type`` / ``invalid_scope``, 401 ``invalid_client``.
* ``/ti-provider-authenticate`` (ML-123881): a ti-provider-accesstoken of a provider that is
  still registered → provider-accesstoken, ``sub`` = client id.
* ``/tim-authenticate`` (ML-123485): ``mxId`` names the user's homeserver (a server name; a user id
  ``@user:server`` or ``matrix:u/user:server`` is accepted and only its server used). The server
  must be in the federation list (else 403); header ``X-Matrix-OpenID-Token`` is checked at that
  server's userinfo endpoint (:mod:`~timkit.fhirproxy.auth.matrix_openid`; 401 when refused, 503
  when unreachable); the returned user must be on exactly that server → search-accesstoken, ``sub``
  = the user id in ``matrix:u/<localpart>:<server>`` notation.
* ``/owner-authenticate`` (ML-123873, method and parameters per ``I_VZD_Owner.yaml``): with
  ``Authorization: Bearer <RegService-OpenID-Token>`` the token is checked
  (:mod:`~timkit.fhirproxy.auth.regservice_token`) → owner-accesstoken, ``sub`` = TelematikID; each
  token is exchanged once (:mod:`~timkit.fhirproxy.storage.used_tokens`, shared by every instance; a
  second exchange within its lifetime is a 401). Without an Authorization header and with trusted
  IDPs configured it starts the IDP sign-in (:mod:`~timkit.fhirproxy.auth.idp_client`; ``idp`` picks
  the issuer, default the first configured) with a 302; without IDPs it is a 401.
* ``/signin-gematik-idp-dienst?code=&state=`` (ML-123873): redeems the code at the IDP that
  ``state`` was issued for → owner-accesstoken, ``sub`` = the ID token's ``idNummer``.

Every endpoint is rate-limited per client (:mod:`~timkit.fhirproxy.auth.rate_limiter`): by client id
where the request names one (``/token``) or a verified token does (``/ti-provider-authenticate``),
else by remote address; limits are checked before any database or outbound work. Errors are rendered
as OAuth errors by :mod:`~timkit.fhirproxy.api.app`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web

from timkit.core.errors import TimkitError
from timkit.core.web import json_response, read_stream
from timkit.fhirproxy.api.token_gate import bearer, security_header
from timkit.fhirproxy.auth import matrix_openid
from timkit.fhirproxy.auth.access_tokens import SPECS, Issued, Kind
from timkit.fhirproxy.auth.exchange import (
    MATRIX_REQUIREMENT,
    OWNER_REQUIREMENT,
    PROVIDER_REQUIREMENT,
    client_credentials,
    idp_owner_token,
    oauth_error,
    owner_token,
    provider_token,
    search_token,
)
from timkit.fhirproxy.auth.idp_client import IdpClient
from timkit.fhirproxy.auth.rate_limiter import RateLimiter
from timkit.fhirproxy.context import CONTEXT_KEY, context

MAX_FORM = 8 * 1024
MAX_CLIENT_ID = 256
MAX_OPENID_TOKEN = 1024
MAX_CODE = 4096
OPENID_HEADER = "X-Matrix-OpenID-Token"
_OAUTH_CODE = re.compile(r"[a-z_]{1,64}")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass
class AuthState:
    """Per-process state of the auth endpoints.

    Attributes:
        limiter: token buckets per client.
        matrix: homeserver discovery and userinfo.
        idps: the trusted IDPs and the sign-ins in progress.
    """

    limiter: RateLimiter
    matrix: matrix_openid.MatrixResolver
    idps: IdpClient


AUTH_KEY = web.AppKey("fhirproxy.auth", AuthState)


def setup(app: web.Application) -> None:
    """Add the token endpoints to ``app`` (whose context must already be set)."""
    ctx = app[CONTEXT_KEY]
    app[AUTH_KEY] = AuthState(
        limiter=RateLimiter(ctx.config.rate_limit),
        matrix=matrix_openid.MatrixResolver(ctx.config.matrix, ctx.http),
        idps=IdpClient(ctx.config.idps, ctx.http, ctx.base + "/signin-gematik-idp-dienst"),
    )
    app.router.add_post("/token", token)
    app.router.add_get("/ti-provider-authenticate", ti_provider_authenticate)
    app.router.add_get("/tim-authenticate", tim_authenticate)
    app.router.add_get("/owner-authenticate", owner_authenticate)
    app.router.add_get("/signin-gematik-idp-dienst", signin_gematik_idp_dienst)


def _state(request: web.Request) -> AuthState:
    return request.app[AUTH_KEY]


def _remote(request: web.Request) -> str:
    return f"ip:{request.remote or 'unknown'}"


def _json(body: dict[str, Any]) -> web.Response:
    return json_response(body, headers=NO_STORE)


def _issued(issued: Issued, **extra: Any) -> web.Response:
    return _json(
        {
            "access_token": issued.token,
            **extra,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        }
    )


# --- POST /token -------------------------------------------------------------------------


async def _form(request: web.Request) -> dict[str, str]:
    """The urlencoded body (bounded); 400 on another type or a repeated parameter."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise oauth_error(
            400,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
            PROVIDER_REQUIREMENT,
        )
    try:
        raw = await read_stream(request.content, MAX_FORM)
    except ValueError:
        raise oauth_error(400, "invalid_request", "request body too large", None) from None
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError) as e:
        raise oauth_error(400, "invalid_request", f"malformed form body: {e}", None) from e
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise oauth_error(400, "invalid_request", f"parameter {name!r} repeated", None)
        form[name] = value
    return form


def _basic(request: web.Request) -> tuple[str, str] | None:
    """HTTP Basic client credentials (RFC 6749 §2.3.1); 401 ``invalid_client`` if malformed."""
    header = security_header(request, "Authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise oauth_error(401, "invalid_client", "client authentication must use HTTP Basic", None)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as e:
        raise oauth_error(401, "invalid_client", "malformed Basic credentials", None) from e
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise oauth_error(401, "invalid_client", "malformed Basic credentials", None)
    return unquote_plus(client_id), unquote_plus(secret)


async def token(request: web.Request) -> web.Response:
    """OAuth 2.0 client credentials grant for registered providers (see module docstring)."""
    ctx, state = context(request), _state(request)
    form = await _form(request)
    basic = _basic(request)
    if basic is not None and (
        "client_secret" in form or form.get("client_id", basic[0]) != basic[0]
    ):
        raise oauth_error(
            400,
            "invalid_request",
            "use exactly one client authentication method (Basic or form)",
            None,
        )
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    valid_id = 0 < len(client_id) <= MAX_CLIENT_ID
    state.limiter.check(f"client:{client_id}" if valid_id else _remote(request))
    grant = form.get("grant_type")
    if not grant:
        raise oauth_error(400, "invalid_request", "grant_type is required", None)
    if grant != "client_credentials":
        raise oauth_error(
            400,
            "unsupported_grant_type",
            f"grant_type {grant!r} is not supported; use client_credentials",
            None,
        )
    scope = SPECS[Kind.TI_PROVIDER].scope
    requested = form.get("scope", "").split()
    if any(s != scope for s in requested):
        raise oauth_error(400, "invalid_scope", f"the only scope offered is {scope!r}", None)
    if not valid_id or not secret:
        raise oauth_error(401, "invalid_client", "client_id and client_secret are required", None)
    issued = await client_credentials(ctx, client_id, secret)
    return _issued(issued, scope=scope)


# --- GET /ti-provider-authenticate ---------------------------------------------------------


async def ti_provider_authenticate(request: web.Request) -> web.Response:
    """Exchange a ti-provider-accesstoken for a provider-accesstoken (ML-123881)."""
    ctx, state = context(request), _state(request)
    try:
        claims = ctx.tokens.check(bearer(request, PROVIDER_REQUIREMENT), Kind.TI_PROVIDER)
    except TimkitError:
        state.limiter.check(_remote(request), PROVIDER_REQUIREMENT)
        raise
    client_id = str(claims["sub"])
    state.limiter.check(f"client:{client_id}", PROVIDER_REQUIREMENT)
    issued = await provider_token(ctx, client_id)
    return _issued(issued, client_id=client_id)


# --- GET /tim-authenticate -----------------------------------------------------------------


def _server_of(mx_id: str) -> matrix_openid.ServerName:
    """The server named by ``mxId`` (server name, ``@user:server`` or ``matrix:u/user:server``)."""
    text = mx_id.strip()
    if text.startswith("matrix:u/"):
        text = "@" + text.removeprefix("matrix:u/")
    if text.startswith("@"):
        _, text = matrix_openid.split_mxid(text)
    return matrix_openid.parse_server_name(text)


async def tim_authenticate(request: web.Request) -> web.Response:
    """Exchange a Matrix OpenID token for a search-accesstoken (ML-123485)."""
    ctx, state = context(request), _state(request)
    state.limiter.check(_remote(request), MATRIX_REQUIREMENT)
    openid_token = (security_header(request, OPENID_HEADER) or "").strip()
    if not openid_token:
        raise oauth_error(
            401, "invalid_token", f"the {OPENID_HEADER} header is required", MATRIX_REQUIREMENT
        )
    if len(openid_token) > MAX_OPENID_TOKEN or not openid_token.isprintable():
        raise oauth_error(401, "invalid_token", "malformed Matrix OpenID token", MATRIX_REQUIREMENT)
    mx_id = request.query.get("mxId", "")
    try:
        server = _server_of(mx_id)
    except ValueError as e:
        raise oauth_error(
            400, "invalid_request", f"mxId must name a Matrix server: {e}", MATRIX_REQUIREMENT
        ) from e
    return _issued(await search_token(ctx, state.matrix, server, openid_token))


# --- GET /owner-authenticate and /signin-gematik-idp-dienst --------------------------------


async def owner_authenticate(request: web.Request) -> web.StreamResponse:
    """RegService-OpenID-Token → owner-accesstoken, or start the IDP sign-in (ML-123873)."""
    ctx, state = context(request), _state(request)
    state.limiter.check(_remote(request), OWNER_REQUIREMENT)
    if "Authorization" not in request.headers and state.idps.configured:
        location = await state.idps.authorization_url(request.query.get("idp"))
        return web.Response(status=302, headers={"Location": location, **NO_STORE})
    regservice_token = bearer(request, OWNER_REQUIREMENT)
    return _issued(await owner_token(ctx, regservice_token))


async def signin_gematik_idp_dienst(request: web.Request) -> web.Response:
    """Redeem an IDP authorization code → owner-accesstoken (ML-123873)."""
    ctx, state = context(request), _state(request)
    state.limiter.check(_remote(request), OWNER_REQUIREMENT)
    code = request.query.get("code", "")
    login_state = request.query.get("state", "")
    if "error" in request.query:
        state.idps.states.take(login_state)
        error = request.query["error"]
        shown = error if _OAUTH_CODE.fullmatch(error) else "(malformed error code)"
        raise oauth_error(
            401, "access_denied", f"the IDP refused the sign-in: {shown}", OWNER_REQUIREMENT
        )
    if not code or not login_state or len(code) > MAX_CODE or len(login_state) > MAX_CODE:
        raise oauth_error(400, "invalid_request", "code and state are required", OWNER_REQUIREMENT)
    claims = await state.idps.redeem(code, login_state)
    return _issued(idp_owner_token(ctx, claims))
