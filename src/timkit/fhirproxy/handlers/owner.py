"""The owner rules of ``/owner`` (ML-123874, ML-123482, ML-123626, ML-123611).

:class:`Ownership` decides which resources belong to one TelematikID; :func:`owner_checked`
turns a resource an owner sends into the one the directory stores, or raises the rule it
breaks (403 ``forbidden``, 422 ``business-rule``). The rules themselves are listed in
:mod:`timkit.fhirproxy.api.owner_routes`, which parses the requests and calls these.
"""

from __future__ import annotations

from typing import Any

from timkit.core.fhir import DIRECTORY_TYPES, TELEMATIK_ID
from timkit.fhirproxy import upstream
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.handlers import fhir_checks, rules

REQ_OWNER = "ML-123874"


REQ_LINK = "ML-123482"


class Ownership:
    """Which resources belong to one TelematikID (ML-123874); look-ups cached per request.

    A resource belongs to ``telematik_id`` when it names it itself
    (:func:`rules.direct_owner`), or when one of its owner links references a resource that
    belongs to it. Links are followed at most :attr:`MAX_DEPTH` deep.
    """

    MAX_DEPTH = 4

    def __init__(self, ctx: FhirProxyContext, telematik_id: str) -> None:
        self.ctx = ctx
        self.telematik_id = telematik_id
        self._cache: dict[str, bool] = {}

    async def owns(self, reference: str, depth: int = 0) -> bool:
        """Whether the resource at ``reference`` (``Type/id``) exists and belongs."""
        if reference.split("/", 1)[0] not in DIRECTORY_TYPES:
            return False
        if reference in self._cache:
            return self._cache[reference]
        self._cache[reference] = False  # a cycle does not make anything owned
        found = await upstream.read(self.ctx, reference)
        result = found is not None and await self.owns_resource(found[0], depth)
        self._cache[reference] = result
        return result

    async def owns_resource(self, resource: dict[str, Any], depth: int = 0) -> bool:
        """Whether ``resource`` belongs."""
        if rules.direct_owner(resource, self.telematik_id):
            return True
        if depth >= self.MAX_DEPTH:
            return False
        for reference in rules.owner_links(resource):
            if await self.owns(reference, depth + 1):
                return True
        return False

    async def has_organization(self) -> bool:
        """Whether an Organization carries the TelematikID (else the owner is a practitioner)."""
        found = await upstream.search_all(
            self.ctx,
            "Organization",
            [("identifier", f"{TELEMATIK_ID}|{self.telematik_id}")],
        )
        return bool(found)


async def owner_checked(
    ownership: Ownership, new: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    """``new`` as the directory stores it for this owner, or the rule it breaks (403/422).

    ``current`` is the stored version for an update, ``None`` for a create.
    """
    resource_type = str(new["resourceType"])
    tid = ownership.telematik_id
    if current is None:
        new = _owner_created(new, tid)
    else:
        new = await _owner_updated(ownership, new, current)
    if rules.origin(new) == "owner":
        await _check_owner_link(ownership, new)
    await _check_mxids(ownership, new, current)
    foreign = await fhir_checks.first_foreign_link(ownership.owns, new, current)
    if foreign is not None:
        element, reference = foreign
        raise fhir_checks.unprocessable(
            f"{resource_type}.{element} references {reference}, which does not exist or"
            f" does not belong to TelematikID {tid}",
            REQ_LINK,
            [f"{resource_type}.{element}"],
        )
    return new


def _owner_created(new: dict[str, Any], tid: str) -> dict[str, Any]:
    resource_type = str(new["resourceType"])
    if resource_type == "Practitioner":
        raise fhir_checks.forbidden(
            "Practitioner entries are base entries synchronised from the VZD-LDAP-Directory;"
            " owners cannot create them",
            REQ_OWNER,
        )
    if rules.origin(new) not in (None, "owner"):
        raise fhir_checks.forbidden(
            f"Origin {rules.origin(new)!r} is reserved for synchronised entries;"
            " owner-created entries have Origin 'owner'",
            REQ_OWNER,
            [f"{resource_type}.meta.tag"],
        )
    foreign = (rules.telematik_ids(new) | rules.owner_extension_ids(new)) - {tid}
    if foreign:
        raise fhir_checks.forbidden(
            f"the entry names TelematikID {', '.join(sorted(foreign))}, not the token's {tid}",
            REQ_OWNER,
            [f"{resource_type}.identifier", f"{resource_type}.extension"],
        )
    new = rules.with_origin(new, "owner")
    if resource_type in rules.OWNER_EXTENSION_TYPES:
        new = rules.with_owner_extension(new, tid)
    if resource_type == "Organization" and not rules.telematik_ids(new):
        identifier = {"system": TELEMATIK_ID, "value": tid}
        new = {**new, "identifier": [*new.get("identifier", []), identifier]}
    return new


async def _owner_updated(
    ownership: Ownership, new: dict[str, Any], current: dict[str, Any]
) -> dict[str, Any]:
    resource_type = str(new["resourceType"])
    tid = ownership.telematik_id
    reference = f"{resource_type}/{current.get('id')}"
    if not await ownership.owns_resource(current):
        raise fhir_checks.forbidden(f"{reference} does not belong to TelematikID {tid}", REQ_OWNER)
    stored_origin = rules.origin(current) or "owner"
    if rules.origin(new) is None:
        new = rules.with_origin(new, stored_origin)
    changes = rules.forbidden_changes(current, new)
    if rules.origin(current) is None and rules.origin(new) == "owner":
        changes = [c for c in changes if not c.endswith(":Origin")]
    if changes:
        raise fhir_checks.forbidden(
            f"{reference}: {', '.join(changes)} may not be changed by the owner"
            f" (synchronised from the VZD-LDAP-Directory or fixed at creation)",
            REQ_OWNER,
            changes,
        )
    added = (rules.telematik_ids(new) - rules.telematik_ids(current)) - {tid}
    if added:
        raise fhir_checks.forbidden(
            f"{reference}: TelematikID {', '.join(sorted(added))} is not the token's {tid}",
            REQ_OWNER,
            [f"{resource_type}.identifier"],
        )
    if stored_origin == "owner" and resource_type in rules.OWNER_EXTENSION_TYPES:
        return rules.with_owner_extension(new, tid)
    if rules.owner_extension_ids(new) != rules.owner_extension_ids(current):
        raise fhir_checks.forbidden(
            f"{reference}: the OwnerTelematikIdEx extension may not be changed",
            REQ_OWNER,
            [f"{resource_type}.extension"],
        )
    return new


async def _check_mxids(
    ownership: Ownership, new: dict[str, Any], current: dict[str, Any] | None
) -> None:
    """ML-123626 / ML-123611: only MXIDs of the owner's own TI-M domains
    (:func:`fhir_checks.check_mxids`)."""
    kept = {value for _, value in rules.published_mxids(current)} if current else set()
    if all(value in kept for _, value in rules.published_mxids(new)):
        return
    organization = await ownership.has_organization()
    telematik_ids = {ownership.telematik_id} if organization else None
    await fhir_checks.check_mxids(ownership.ctx, new, current, telematik_ids=telematik_ids)


async def _check_owner_link(ownership: Ownership, new: dict[str, Any]) -> None:
    """ML-123482: an owner-origin entry references an owned resource via its owner link."""
    resource_type = str(new["resourceType"])
    elements = rules.OWNER_LINKS.get(resource_type, ())
    if not elements:
        return
    links = rules.owner_links(new)
    names = [f"{resource_type}.{e}" for e in elements]
    if not links:
        if resource_type == "Endpoint" and not await ownership.has_organization():
            return
        raise fhir_checks.unprocessable(
            f"an owner-created {resource_type} must be linked to the owner's base entry via"
            f" {' or '.join(names)}",
            REQ_LINK,
            names,
        )
    for reference in links:
        if not await ownership.owns(reference):
            raise fhir_checks.unprocessable(
                f"{' or '.join(names)} must reference an entry of TelematikID"
                f" {ownership.telematik_id}; {reference} is not one",
                REQ_LINK,
                names,
            )
