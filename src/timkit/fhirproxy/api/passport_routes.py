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
* ``GET /tim-provider-services/FederationList`` (provider token) →
  ``{"version", "hashAlgorithm": "SHA-256", "domainList": [<hash>]}``. The version and domains
  are those of the current signed list. Each hash is the SHA-256 of the lower-case domain
  (UTF-8), as **lower-case hex**. The old yaml only says "hashed string". Hex is what the
  federation list parser (:class:`federation.ListEntry`) expects, and it matches common
  ``sha256Hex`` practice.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from timkit.core import jwt
from timkit.core.signers import Signer, load_signer
from timkit.core.web import json_response
from timkit.fhirproxy.api import search_routes
from timkit.fhirproxy.auth.access_tokens import Kind, authorize
from timkit.fhirproxy.context import CONTEXT_KEY, FhirProxyContext, context
from timkit.fhirproxy.handlers import rules
from timkit.fhirproxy.handlers.signed_list import current_list

PREFIX = "/tim-search"
CERT_PATH = "/PASSporTCertificates"
PARAM = "PASSporT"
REQUIREMENT = "ML-123483"


@dataclass(frozen=True)
class PassportService:
    """Issues PASSporTs and attaches them to the MXIDs of found entries.

    Attributes:
        signer: the PASSporT signer (ES256).
        x5u: URL of the signer's certificate, put in every PASSporT header.
    """

    signer: Signer
    x5u: str

    def issue(self, orig: str, dest: str) -> str:
        """A PASSporT from ``orig`` to ``dest`` (both MXIDs in URL form)."""
        claims = {"orig": {"uri": orig}, "dest": {"uri": [dest]}, "iat": int(time.time())}
        return jwt.sign(claims, self.signer.key, typ="passport", header={"x5u": self.x5u})

    def decorate(self, claims: dict[str, Any], resource: dict[str, Any]) -> None:
        """Append ``?PASSporT=…`` to every eligible MXID of ``resource`` (in place)."""
        orig = str(claims["sub"])
        for target in list(rules.passport_targets(resource)):
            if target == "address":
                resource["address"] = self._attach(orig, resource["address"])
            else:
                telecom = resource["telecom"][int(target.split("/", 1)[1])]
                telecom["value"] = self._attach(orig, telecom["value"])

    def _attach(self, orig: str, mxid: str) -> str:
        return f"{mxid}?{PARAM}={self.issue(orig, mxid)}"

    def pem_chain(self) -> bytes:
        """The signer's certificate chain as PEM, leaf first."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.signer.chain)

    def certificates(self) -> dict[str, list[str]]:
        """The ``/PASSporTCertificates`` body."""
        pem = self.signer.certificate.public_bytes(serialization.Encoding.PEM).decode()
        return {"passportSigningCertificates": [pem]}


PASSPORT_KEY = web.AppKey("fhirproxy.passport", PassportService)


def passport_service(ctx: FhirProxyContext) -> PassportService:
    """The PASSporT service for ``ctx``'s configuration (signer loaded or issued)."""
    config = ctx.config
    signer = load_signer(
        config.passport.signer,
        config.pki_dir,
        name="passport-signer",
        common_name="VZD-FHIR-Directory PASSporT Signer",
        curve=ec.SECP256R1(),
        path="passport.signer",
    )
    x5u = config.passport.x5u or f"{ctx.base}{CERT_PATH}/passport.cer"
    return PassportService(signer, x5u)


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


def hashed_list(ctx: FhirProxyContext) -> dict[str, Any]:
    """The seed's federation list: current version, SHA-256 hex of every domain."""
    current = current_list(ctx.db)
    hashes = sorted(
        hashlib.sha256(entry.domain.lower().encode()).hexdigest() for entry in current.entries
    )
    return {"version": current.version, "hashAlgorithm": "SHA-256", "domainList": hashes}


async def federation_list(request: web.Request) -> web.Response:
    """``GET /tim-provider-services/FederationList`` (provider token): the hashed list."""
    ctx = context(request)
    authorize(request, ctx.tokens, Kind.PROVIDER)
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(ctx.executor, hashed_list, ctx)
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
