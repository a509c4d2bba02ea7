"""``/tim-provider-services/FHIR``: providers manage their own entries (seed 003 §5.2.1.4).

Provider-accesstoken, ``sub`` = client_id. Organization and Endpoint only. A provider owns the
Organizations whose ``alias`` holds its client_id and the Endpoints whose
``managingOrganization`` is one of those (:class:`ProviderOwnership`). It may search, read,
create, update and delete only those. An Organization must keep the client_id in ``alias``
(422), and it must carry a telematik-id ``identifier`` for which the provider registered a
TI-M domain; every telematik-id the write adds must be one of those (403, ML-123881: a
provider acts only for the organisations it serves). Searches are narrowed to owned
entries, and ``_include``/``_revinclude``/``_has`` are refused (400). An Endpoint may
publish only MXIDs on TI-M domains the federation list registers for the TelematikIDs of
its managing Organizations (403 naming ML-123626, 422 when malformed). Paths are read with
:func:`fhirhttp.fhir_path` (FHIR ids only).

Writes are audited by the edge middleware (:mod:`timkit.fhirproxy.api`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from timkit.core.errors import IssueType, TimkitError
from timkit.fhirproxy import fhirhttp, rules, upstream
from timkit.fhirproxy.context import ProxyContext, context
from timkit.fhirproxy.tokens import Kind, authorize

PREFIX = "/tim-provider-services/FHIR"
REQ_PROVIDER = "AF_10048"
REQ_DOMAIN = "ML-123881"
TYPES = frozenset({"Organization", "Endpoint"})


class ProviderOwnership:
    """Which Organizations and Endpoints belong to a provider (``client_id`` in ``alias``)."""

    def __init__(self, ctx: ProxyContext, client_id: str) -> None:
        self.ctx = ctx
        self.client_id = client_id
        self._cache: dict[str, bool] = {}

    async def owns(self, reference: str) -> bool:
        """Whether ``reference`` is an Organization or Endpoint of the provider."""
        if reference.split("/", 1)[0] not in TYPES:
            return False
        if reference not in self._cache:
            self._cache[reference] = False
            found = await upstream.read(self.ctx, reference)
            self._cache[reference] = found is not None and await self.owns_resource(found[0])
        return self._cache[reference]

    async def owns_resource(self, resource: dict[str, Any]) -> bool:
        """Whether ``resource`` belongs to the provider."""
        if resource.get("resourceType") == "Organization":
            aliases = resource.get("alias")
            return isinstance(aliases, list) and self.client_id in aliases
        if resource.get("resourceType") == "Endpoint":
            for reference in rules.references(resource, "managingOrganization"):
                if await self.owns(reference):
                    return True
        return False


def _provider(request: web.Request) -> tuple[ProxyContext, ProviderOwnership, str]:
    ctx = context(request)
    claims = authorize(request, ctx.tokens, Kind.PROVIDER)
    name = fhirhttp.resource_type(request, PREFIX)
    if name not in TYPES:
        raise fhirhttp.forbidden(
            f"providers manage only Organization and Endpoint entries here, not {name}",
            REQ_PROVIDER,
        )
    return ctx, ProviderOwnership(ctx, str(claims["sub"])), name


async def provider_search(request: web.Request) -> web.Response:
    """``GET /tim-provider-services/FHIR/{type}``: the provider's own entries only."""
    ctx, ownership, resource_type = _provider(request)
    params = fhirhttp.query_pairs(request)
    for name, _ in params:
        if name.split(":", 1)[0] in ("_include", "_revinclude") or name.startswith("_has"):
            raise TimkitError(
                400,
                IssueType.NOT_SUPPORTED,
                f"{name} is not supported on {PREFIX}",
                requirement=REQ_PROVIDER,
            )
    code = "alias:exact" if resource_type == "Organization" else "organization.alias:exact"
    params.append((code, ownership.client_id))
    status, headers, raw = await upstream.fhir(ctx, "GET", f"/{resource_type}", params=params)
    return fhirhttp.relayed(ctx, status, headers, raw, PREFIX)


async def provider_read(request: web.Request) -> web.Response:
    """``GET /tim-provider-services/FHIR/{type}/{id}``."""
    ctx, ownership, resource_type = _provider(request)
    resource_id = fhirhttp.resource_id(request, PREFIX)
    current, _ = await fhirhttp.current(ctx, resource_type, resource_id)
    await _provider_owned(ownership, current)
    status, headers, raw = await upstream.relay(ctx, f"/{resource_type}/{resource_id}")
    return fhirhttp.relayed(ctx, status, headers, raw, PREFIX)


async def provider_create(request: web.Request) -> web.Response:
    """``POST /tim-provider-services/FHIR/{type}``."""
    ctx, ownership, resource_type = _provider(request)
    body = await fhirhttp.read_body(request, resource_type, None)
    resource = await _provider_checked(ownership, body, None)
    status, headers, raw = await upstream.fhir(ctx, "POST", f"/{resource_type}", body=resource)
    return fhirhttp.relayed(ctx, status, headers, raw, PREFIX)


async def provider_update(request: web.Request) -> web.Response:
    """``PUT /tim-provider-services/FHIR/{type}/{id}``."""
    ctx, ownership, resource_type = _provider(request)
    resource_id = fhirhttp.resource_id(request, PREFIX)
    body = await fhirhttp.read_body(request, resource_type, resource_id)
    current, etag = await fhirhttp.current(ctx, resource_type, resource_id)
    await _provider_owned(ownership, current)
    resource = await _provider_checked(ownership, body, current)
    return await fhirhttp.send_update(ctx, request, resource, etag, PREFIX)


async def provider_delete(request: web.Request) -> web.Response:
    """``DELETE /tim-provider-services/FHIR/{type}/{id}``."""
    ctx, ownership, resource_type = _provider(request)
    resource_id = fhirhttp.resource_id(request, PREFIX)
    current, _ = await fhirhttp.current(ctx, resource_type, resource_id)
    await _provider_owned(ownership, current)
    return await fhirhttp.delete_unreferenced(ctx, resource_type, resource_id, PREFIX)


async def _provider_owned(ownership: ProviderOwnership, resource: dict[str, Any]) -> None:
    if not await ownership.owns_resource(resource):
        raise fhirhttp.forbidden(
            f"{resource.get('resourceType')}/{resource.get('id')} is not an entry of provider"
            f" {ownership.client_id} (Organization.alias holds the client_id; an Endpoint's"
            " managingOrganization is such an Organization)",
            REQ_PROVIDER,
        )


async def _provider_checked(
    ownership: ProviderOwnership, new: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    resource_type = str(new["resourceType"])
    stored_origin = rules.origin(current) if current is not None else None
    if rules.origin(new) is None:
        new = rules.with_origin(new, stored_origin or "owner")
    elif rules.origin(new) != (stored_origin or "owner"):
        raise fhirhttp.forbidden(
            f"Origin {rules.origin(new)!r} may not be set by a provider",
            REQ_PROVIDER,
            [f"{resource_type}.meta.tag"],
        )
    if resource_type == "Organization" and ownership.client_id not in (new.get("alias") or []):
        raise fhirhttp.unprocessable(
            f"an Organization of provider {ownership.client_id} must carry the client_id in"
            " alias (seed 003 §5.2.1.4)",
            REQ_PROVIDER,
            ["Organization.alias"],
        )
    if resource_type == "Organization":
        await _check_telematik_ids(ownership, new, current)
    if resource_type == "Endpoint" and not any(
        [await ownership.owns(r) for r in rules.references(new, "managingOrganization")]
    ):
        raise fhirhttp.unprocessable(
            "an Endpoint of a provider must have a managingOrganization whose alias carries"
            f" the client_id {ownership.client_id}",
            REQ_PROVIDER,
            ["Endpoint.managingOrganization"],
        )
    if resource_type == "Endpoint":
        await fhirhttp.check_mxids(
            ownership.ctx, new, current, telematik_ids=await _organization_ids(ownership, new)
        )
    old_links = set(rules.linked(current)) if current is not None else set()
    for element, reference in rules.linked(new):
        if element == "managingOrganization" or (element, reference) in old_links:
            continue
        if not await ownership.owns(reference):
            raise fhirhttp.unprocessable(
                f"{resource_type}.{element} references {reference}, which is not an entry of"
                f" provider {ownership.client_id}",
                REQ_PROVIDER,
                [f"{resource_type}.{element}"],
            )
    return new


async def _organization_ids(ownership: ProviderOwnership, endpoint: dict[str, Any]) -> set[str]:
    """TelematikIDs of the provider's Organizations the Endpoint is managed by."""
    found: set[str] = set()
    for reference in rules.references(endpoint, "managingOrganization"):
        if not await ownership.owns(reference):
            continue
        stored = await upstream.read(ownership.ctx, reference)
        if stored is not None:
            found |= rules.telematik_ids(stored[0])
    return found


async def _check_telematik_ids(
    ownership: ProviderOwnership, new: dict[str, Any], current: dict[str, Any] | None
) -> None:
    """ML-123881: the Organization names a TelematikID the provider registered a domain for.

    At least one telematik-id ``identifier`` must be such a TelematikID, and every one the
    write adds must be (one already stored may stay, e.g. after its domain was removed).
    """
    tids = rules.telematik_ids(new)
    kept = rules.telematik_ids(current) if current is not None else set()
    ctx, client_id = ownership.ctx, ownership.client_id
    loop = asyncio.get_running_loop()
    registered = await loop.run_in_executor(
        ctx.executor,
        lambda: {t for t in tids if ctx.domains.provider_has_telematik_id(client_id, t)},
    )
    unregistered = sorted(tids - registered - kept)
    if registered and not unregistered:
        return
    named = f" ({', '.join(unregistered)})" if unregistered else ""
    raise fhirhttp.forbidden(
        f"an Organization of provider {client_id} must carry only telematik-id identifiers"
        f" for which {client_id} registered a TI-M domain (POST /tim-provider-services/"
        f"federation); this one has {'none' if not registered else 'others'}{named}",
        REQ_DOMAIN,
        ["Organization.identifier"],
    )


def setup(app: web.Application) -> None:
    """Add ``/tim-provider-services/FHIR`` to ``app``."""
    router = app.router
    router.add_get(PREFIX + "/{type}", provider_search)
    router.add_post(PREFIX + "/{type}", provider_create)
    router.add_get(PREFIX + "/{type}/{id}", provider_read)
    router.add_put(PREFIX + "/{type}/{id}", provider_update)
    router.add_delete(PREFIX + "/{type}/{id}", provider_delete)
