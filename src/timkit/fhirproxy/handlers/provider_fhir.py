"""The provider rules of ``/tim-provider-services/FHIR`` (AF_10048, ML-123881, ML-123626).

:class:`ProviderOwnership` decides which Organizations and Endpoints belong to a provider;
:func:`provider_owned` refuses a foreign one and :func:`provider_checked` turns a resource a
provider sends into the one the directory stores, or raises the rule it breaks. The rules
are listed in :mod:`timkit.fhirproxy.api.provider_fhir_routes`, which parses the requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from timkit.fhirproxy import upstream
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.handlers import fhir_checks, rules

REQ_PROVIDER = "AF_10048"


REQ_DOMAIN = "ML-123881"


TYPES = frozenset({"Organization", "Endpoint"})


class ProviderOwnership:
    """Which Organizations and Endpoints belong to a provider (``client_id`` in ``alias``)."""

    def __init__(self, ctx: FhirProxyContext, client_id: str) -> None:
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


async def provider_owned(ownership: ProviderOwnership, resource: dict[str, Any]) -> None:
    if not await ownership.owns_resource(resource):
        raise fhir_checks.forbidden(
            f"{resource.get('resourceType')}/{resource.get('id')} is not an entry of provider"
            f" {ownership.client_id} (Organization.alias holds the client_id; an Endpoint's"
            " managingOrganization is such an Organization)",
            REQ_PROVIDER,
        )


async def provider_checked(
    ownership: ProviderOwnership, new: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    resource_type = str(new["resourceType"])
    stored_origin = rules.origin(current) if current is not None else None
    if rules.origin(new) is None:
        new = rules.with_origin(new, stored_origin or "owner")
    elif rules.origin(new) != (stored_origin or "owner"):
        raise fhir_checks.forbidden(
            f"Origin {rules.origin(new)!r} may not be set by a provider",
            REQ_PROVIDER,
            [f"{resource_type}.meta.tag"],
        )
    if resource_type == "Organization" and ownership.client_id not in (new.get("alias") or []):
        raise fhir_checks.unprocessable(
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
        raise fhir_checks.unprocessable(
            "an Endpoint of a provider must have a managingOrganization whose alias carries"
            f" the client_id {ownership.client_id}",
            REQ_PROVIDER,
            ["Endpoint.managingOrganization"],
        )
    if resource_type == "Endpoint":
        await fhir_checks.check_mxids(
            ownership.ctx, new, current, telematik_ids=await _organization_ids(ownership, new)
        )
    foreign = await fhir_checks.first_foreign_link(
        ownership.owns, new, current, skip={"managingOrganization"}
    )
    if foreign is not None:
        element, reference = foreign
        raise fhir_checks.unprocessable(
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
    raise fhir_checks.forbidden(
        f"an Organization of provider {client_id} must carry only telematik-id identifiers"
        f" for which {client_id} registered a TI-M domain (POST /tim-provider-services/"
        f"federation); this one has {'none' if not registered else 'others'}{named}",
        REQ_DOMAIN,
        ["Organization.identifier"],
    )
