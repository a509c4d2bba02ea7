"""The seed's VZD 1.0.0 compatibility mode: ``/tim-search`` with PASSporTs (ML-123483).

Only set up when ``passport.enabled`` is true. It adds:

* ``GET /tim-search/…``: the same as ``/search`` (same search token, same visibility rules)
  except that every MXID in URL form (``matrix:u/…``) found in an ``Endpoint.address`` or a
  ``telecom`` value gets ``?PASSporT=<token>`` appended. That happens only where the MXID is
  present and its ``period.end`` is not in the past (:func:`rules.passport_targets`). The seed
  writes the example as ``…/?PASSporT=``; we append ``?PASSporT=`` directly to the MXID, which
  keeps the value a well-formed ``matrix:`` URI (MSC2312 puts its query after the MXID);
* the PASSporT (RFC 8225): header ``{"alg": "ES256", "typ": "passport", "x5u"}``, claims
  ``{"orig": {"uri": <caller's MXID>}, "dest": {"uri": [<found MXID>]}, "iat"}``, signed by the
  PASSporT signer (configured, or ``passport-signer`` of the local PKI, P-256);
* ``GET /PASSporTCertificates`` → ``{"passportSigningCertificates": [<PEM>]}`` (provider
  services 1.0.2 shape), and ``GET /PASSporTCertificates/passport.cer``, the default ``x5u``
  (PEM, as RFC 7515 §4.1.5 requires of an ``x5u`` resource). Both are public, because whoever
  checks a PASSporT has to fetch the certificate. The seed's provider-services path
  ``/tim-provider-services/PASSporTCertificates`` answers the same with a provider token;
* ``GET /tim-provider-services/FederationList`` (provider token) → ``{"version", "hashAlgorithm":
  "SHA-256", "domainList": [<hash>]}``. The version and domains are those of the current signed
  list. Each hash is the SHA-256 of the lower-case domain (UTF-8), as **lower-case hex**. The old
  yaml only says "hashed string". Hex is what the federation list parser
  (:class:`timkit.core.federation_list.ListEntry`) expects, and it matches common ``sha256Hex``
  practice.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from timkit.core.web import json_response
from timkit.fhirproxy.api import search_routes
from timkit.fhirproxy.api.token_gate import authorize
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.auth.passport import CERT_PATH, PassportService, passport_service
from timkit.fhirproxy.context import CONTEXT_KEY, context
from timkit.fhirproxy.handlers.signed_list import hashed_list

PREFIX = "/tim-search"


PASSPORT_KEY = web.AppKey("fhirproxy.passport", PassportService)


async def tim_search(request: web.Request) -> web.Response:
    """``GET /tim-search/{type}[/{id}]``: ``/search`` with PASSporTs attached."""
    service = request.app[PASSPORT_KEY]
    return await search_routes.search_view(request, PREFIX, service.decorate)


async def tim_search_metadata(request: web.Request) -> web.Response:
    """``GET /tim-search/metadata``."""
    return await search_routes.search_metadata(request, PREFIX)


async def certificates(request: web.Request) -> web.Response:
    """``GET /PASSporTCertificates`` (public)."""
    return json_response(request.app[PASSPORT_KEY].certificates())


async def provider_certificates(request: web.Request) -> web.Response:
    """``GET /tim-provider-services/PASSporTCertificates`` (provider token)."""
    authorize(request, context(request).tokens, Kind.PROVIDER)
    return json_response(request.app[PASSPORT_KEY].certificates())


async def certificate_file(request: web.Request) -> web.Response:
    """``GET /PASSporTCertificates/passport.cer``: the ``x5u`` target (PEM chain, public)."""
    return web.Response(
        body=request.app[PASSPORT_KEY].pem_chain(),
        content_type="application/pem-certificate-chain",
    )


async def federation_list(request: web.Request) -> web.Response:
    """``GET /tim-provider-services/FederationList`` (provider token): the hashed list."""
    ctx = context(request)
    authorize(request, ctx.tokens, Kind.PROVIDER)
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(ctx.executor, hashed_list, ctx.db)
    return json_response(body)


def setup(app: web.Application) -> None:
    """Add the compatibility mode's routes to ``app`` (only when ``passport.enabled``)."""
    app[PASSPORT_KEY] = passport_service(app[CONTEXT_KEY])
    router = app.router
    router.add_get(PREFIX + "/metadata", tim_search_metadata)
    router.add_get(PREFIX + "/{type}", tim_search)
    router.add_get(PREFIX + "/{type}/{id}", tim_search)
    router.add_route("*", PREFIX + "{tail:(/.*)?}", search_routes.read_only)
    router.add_get(CERT_PATH, certificates)
    router.add_get(CERT_PATH + "/passport.cer", certificate_file)
    router.add_get("/tim-provider-services/PASSporTCertificates", provider_certificates)
    router.add_get("/tim-provider-services/FederationList", federation_list)
