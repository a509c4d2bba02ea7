"""``GET /federation``: the federation list for the RD's own Messenger-Proxies (AF_10064).

Only the RD's proxies may ask (:func:`require_proxy`: a configured bearer token, fail
closed). ``GET /federation?version=N`` answers what
:meth:`timkit.registration.list_cache.FederationCache.serve` decides:

* 200 with the compact JWS (``application/jose``, header :data:`VERSION_HEADER`) when ``N``
  is absent or not the held version;
* 304 when ``N`` is the held version;
* 503 ``TIM_FEDERATION_LIST_OUTDATED`` / ``TIM_FEDERATION_LIST_MISSING``;
* 400 ``M_INVALID_PARAM`` when ``N`` is not a non-negative integer.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.registration.config import ProxiesSettings
from timkit.registration.context import context

log = logging.getLogger(__name__)

VERSION_HEADER = "X-TIM-Federation-List-Version"


def _proxy_tokens(settings: ProxiesSettings) -> list[str]:
    tokens = [t for t in settings.tokens if t]
    for path in settings.token_files:
        try:
            token = path.read_text("utf-8").strip()
        except OSError as e:
            log.error("proxy token file %s not readable: %s", path, e)
            continue
        if token:
            tokens.append(token)
    return tokens


def require_proxy(request: web.Request, settings: ProxiesSettings) -> None:
    """Admit only the RD's own Messenger-Proxies (a configured bearer token); fail closed.

    Raises:
        TimkitError: 401 ``M_MISSING_TOKEN`` without a bearer token, ``M_UNKNOWN_TOKEN`` for
            one that is not configured (also when none is configured at all).
    """
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise TimkitError(401, Codes.MISSING_TOKEN, "a Messenger-Proxy bearer token is required")
    given = presented.strip().encode()
    if not any(hmac.compare_digest(given, t.encode()) for t in _proxy_tokens(settings)):
        raise TimkitError(401, Codes.UNKNOWN_TOKEN, "unknown Messenger-Proxy token")


async def get_federation(request: web.Request) -> web.StreamResponse:
    """``GET /federation?version=N``: the held list, 304 when current, 503 when outdated."""
    ctx = context(request)
    require_proxy(request, ctx.config.proxies)
    raw = request.query.get("version")
    version: int | None = None
    if raw is not None:
        if not raw.isdigit() or len(raw) > 18:
            raise TimkitError(400, Codes.INVALID_PARAM, "version must be a non-negative integer")
        version = int(raw)
    held = ctx.federation.serve(version)
    if held is None:
        assert version is not None
        return web.Response(status=304, headers={VERSION_HEADER: str(version)})
    return web.Response(
        body=held.jws, content_type="application/jose", headers={VERSION_HEADER: str(held.version)}
    )


def setup(app: web.Application) -> None:
    """Add ``GET /federation``."""
    app.router.add_get("/federation", get_federation)
