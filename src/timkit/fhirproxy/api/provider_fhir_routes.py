"""``/tim-provider-services/FHIR``: providers manage their own entries (seed 003 §5.2.1.4).

Provider-accesstoken, ``sub`` = client_id. Organization and Endpoint only. A provider owns the
Organizations whose ``alias`` holds its client_id and the Endpoints whose
``managingOrganization`` is one of those
(:class:`timkit.fhirproxy.handlers.provider_fhir.ProviderOwnership`). It may search, read,
create, update and delete only those. An Organization must keep the client_id in ``alias``
(422), and it must carry a telematik-id ``identifier`` for which the provider registered a
TI-M domain; every telematik-id the write adds must be one of those (403, ML-123881: a
provider acts only for the organisations it serves). Searches are narrowed to owned
entries, and ``_include``/``_revinclude``/``_has`` are refused (400). An Endpoint may
publish only MXIDs on TI-M domains the federation list registers for the TelematikIDs of
its managing Organizations (403 naming ML-123626, 422 when malformed). Paths are read with
:func:`fhir_http.fhir_path` (FHIR ids only).

Writes are audited by the edge middleware (:mod:`timkit.fhirproxy.api.app`).
"""

from __future__ import annotations

from aiohttp import web

from timkit.core.errors import IssueType, TimkitError
from timkit.fhirproxy import upstream
from timkit.fhirproxy.api import fhir_http
from timkit.fhirproxy.api.token_gate import authorize
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.context import FhirProxyContext, context
from timkit.fhirproxy.handlers import fhir_checks, provider_fhir

PREFIX = "/tim-provider-services/FHIR"


def _provider(
    request: web.Request,
) -> tuple[FhirProxyContext, provider_fhir.ProviderOwnership, str]:
    ctx = context(request)
    claims = authorize(request, ctx.tokens, Kind.PROVIDER)
    name = fhir_http.resource_type(request, PREFIX)
    if name not in provider_fhir.TYPES:
        raise fhir_checks.forbidden(
            f"providers manage only Organization and Endpoint entries here, not {name}",
            provider_fhir.REQ_PROVIDER,
        )
    return ctx, provider_fhir.ProviderOwnership(ctx, str(claims["sub"])), name


async def provider_search(request: web.Request) -> web.Response:
    """``GET /tim-provider-services/FHIR/{type}``: the provider's own entries only."""
    ctx, ownership, resource_type = _provider(request)
    params = fhir_http.query_pairs(request)
    for name, _ in params:
        if name.split(":", 1)[0] in ("_include", "_revinclude") or name.startswith("_has"):
            raise TimkitError(
                400,
                IssueType.NOT_SUPPORTED,
                f"{name} is not supported on {PREFIX}",
                requirement=provider_fhir.REQ_PROVIDER,
            )
    code = "alias:exact" if resource_type == "Organization" else "organization.alias:exact"
    params.append((code, ownership.client_id))
    status, headers, raw = await upstream.fhir(ctx, "GET", f"/{resource_type}", params=params)
    return fhir_http.relayed(ctx, status, headers, raw, PREFIX)


async def provider_read(request: web.Request) -> web.Response:
    """``GET /tim-provider-services/FHIR/{type}/{id}``."""
    ctx, ownership, resource_type = _provider(request)
    resource_id = fhir_http.resource_id(request, PREFIX)
    current, _ = await fhir_checks.current(ctx, resource_type, resource_id)
    await provider_fhir.provider_owned(ownership, current)
    status, headers, raw = await upstream.relay(ctx, f"/{resource_type}/{resource_id}")
    return fhir_http.relayed(ctx, status, headers, raw, PREFIX)


async def provider_create(request: web.Request) -> web.Response:
    """``POST /tim-provider-services/FHIR/{type}``."""
    ctx, ownership, resource_type = _provider(request)
    body = await fhir_http.read_body(request, resource_type, None)
    resource = await provider_fhir.provider_checked(ownership, body, None)
    status, headers, raw = await upstream.fhir(ctx, "POST", f"/{resource_type}", body=resource)
    return fhir_http.relayed(ctx, status, headers, raw, PREFIX)


async def provider_update(request: web.Request) -> web.Response:
    """``PUT /tim-provider-services/FHIR/{type}/{id}``."""
    ctx, ownership, resource_type = _provider(request)
    resource_id = fhir_http.resource_id(request, PREFIX)
    body = await fhir_http.read_body(request, resource_type, resource_id)
    current, etag = await fhir_checks.current(ctx, resource_type, resource_id)
    await provider_fhir.provider_owned(ownership, current)
    resource = await provider_fhir.provider_checked(ownership, body, current)
    return await fhir_http.send_update(ctx, request, resource, etag, PREFIX)


async def provider_delete(request: web.Request) -> web.Response:
    """``DELETE /tim-provider-services/FHIR/{type}/{id}``."""
    ctx, ownership, resource_type = _provider(request)
    resource_id = fhir_http.resource_id(request, PREFIX)
    current, _ = await fhir_checks.current(ctx, resource_type, resource_id)
    await provider_fhir.provider_owned(ownership, current)
    return await fhir_http.delete_unreferenced(ctx, resource_type, resource_id, PREFIX)


def setup(app: web.Application) -> None:
    """Add ``/tim-provider-services/FHIR`` to ``app``."""
    router = app.router
    router.add_get(PREFIX + "/{type}", provider_search)
    router.add_post(PREFIX + "/{type}", provider_create)
    router.add_get(PREFIX + "/{type}/{id}", provider_read)
    router.add_put(PREFIX + "/{type}/{id}", provider_update)
    router.add_delete(PREFIX + "/{type}/{id}", provider_delete)
