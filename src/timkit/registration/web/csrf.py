"""CSRF protection of the web forms: double-submit token bound to a ``__Host-`` cookie.

Every page with a form gets a token (:func:`token_for`), set as the cookie :data:`COOKIE`
(``__Host-`` prefix: Secure, path ``/``, no domain, so no sibling host can plant it;
``SameSite=Strict``; ``HttpOnly``) and embedded in the form as the field ``csrf``. A POST is
accepted only when the field equals the cookie (constant-time) and, when the browser sends
``Origin``, that origin is the RD's own. Together with ``SameSite=Strict`` session cookies a
cross-site page can neither read nor forge the pair.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from aiohttp import web

from timkit.core.errors import Codes, TimkitError

COOKIE = "__Host-rd-csrf"
FIELD = "csrf"
TOKEN_KEY = web.RequestKey("registration.csrf", str)


def token_for(request: web.Request) -> str:
    """The CSRF token of ``request`` (the cookie's, else a new one set on the response)."""
    if TOKEN_KEY in request:
        return request[TOKEN_KEY]
    token = request.cookies.get(COOKIE, "")
    if len(token) < 32:
        token = secrets.token_urlsafe(32)
    request[TOKEN_KEY] = token
    return token


def set_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Set the CSRF cookie on ``response`` if a new token was issued for ``request``."""
    token = request.get(TOKEN_KEY)
    if token and token != request.cookies.get(COOKIE):
        response.set_cookie(COOKIE, token, path="/", secure=True, httponly=True, samesite="Strict")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check(request: web.Request, submitted: str, base: str) -> None:
    """Refuse a form POST whose token does not match its cookie or whose origin is foreign.

    Raises:
        TimkitError: 403 ``M_FORBIDDEN``.
    """
    cookie = request.cookies.get(COOKIE, "")
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null" and _origin(origin) != _origin(base):
        raise TimkitError(403, Codes.FORBIDDEN, "cross-site form submission refused (Origin)")
    if not cookie or not submitted or not secrets.compare_digest(cookie, submitted):
        raise TimkitError(
            403, Codes.FORBIDDEN, "form expired or cross-site request refused (CSRF token)"
        )
