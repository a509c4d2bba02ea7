"""``/owner``: FHIR writes of owners (owner-accesstoken, ``sub`` = TelematikID; AF_10037).

Search (``_count`` clamped to ``owner_search_limit``, no ``next`` link, so at most that many
results), read, and writes that pass the owner rules:

* ML-123880: only the six directory types (400);
* ML-123874: only resources of the token's TelematikID (see :class:`Ownership`); on
  ``ldap``-origin entries only what LDAP does not sync (:func:`rules.forbidden_changes`); no
  foreign TelematikID in ``identifier`` or ``OwnerTelematikIdEx``; owners cannot create
  Practitioners (base entries) nor delete ``ldap``-origin entries (403);
* ML-123626 / ML-123611: every MXID an entry newly publishes (a TI-M Endpoint's
  ``address``, MXIDs in ``telecom``) must be well-formed and on a TI-M domain the
  federation list registers for the owner's TelematikID (an organisation), or on any
  domain of the list (a practitioner, an owner without an Organization) (403, 422 when
  malformed; :func:`fhirhttp.check_mxids`);
* ML-123482: an entry the owner creates or keeps must reference an owned resource through
  its owner link (:data:`rules.OWNER_LINKS`), and every *new* link
  (:data:`rules.LINK_ELEMENTS`) must point at an owned resource (422). Exception: an owner
  without an Organization (a practitioner) may create an Endpoint without
  ``managingOrganization``. The Endpoint cannot reference a Practitioner, so the
  ``OwnerTelematikIdEx`` the proxy sets is its link;
* the proxy sets ``meta.tag`` Origin ``owner`` and ``OwnerTelematikIdEx`` on created entries;
* a resource still referenced (:data:`rules.REFERRERS`) cannot be deleted (409, naming the
  referrers);
* a ``PUT`` without ``If-Match`` is sent with the ETag of the version the rules were checked
  against, so a concurrent change gives 412 instead of slipping past the checks;
* batch/transaction Bundles (``POST /owner``) are refused (405). Each entry has to be sent as
  its own request, so that each is checked and audited on its own.

Writes are audited by the edge middleware (:mod:`timkit.fhirproxy.api`).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from timkit.core.errors import IssueType, TimkitError
from timkit.core.fhir import DIRECTORY_TYPES, TELEMATIK_ID
from timkit.fhirproxy import fhirhttp, rules, upstream
from timkit.fhirproxy.context import ProxyContext, context
from timkit.fhirproxy.tokens import Kind, authorize

PREFIX = "/owner"
REQ_OWNER = "ML-123874"
REQ_LINK = "ML-123482"


class Ownership:
    """Which resources belong to one TelematikID (ML-123874); look-ups cached per request.

    A resource belongs to ``telematik_id`` when it names it itself
    (:func:`rules.direct_owner`), or when one of its owner links references a resource that
    belongs to it. Links are followed at most :attr:`MAX_DEPTH` deep.
    """

    MAX_DEPTH = 4

    def __init__(self, ctx: ProxyContext, telematik_id: str) -> None:
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


def _owner(request: web.Request) -> tuple[ProxyContext, Ownership]:
    ctx = context(request)
    claims = authorize(request, ctx.tokens, Kind.OWNER)
    return ctx, Ownership(ctx, str(claims["sub"]))


async def owner_search(request: web.Request) -> web.Response:
    """``GET /owner/{type}``: a directory search capped at ``owner_search_limit`` results."""
    ctx, _ = _owner(request)
    resource_type = fhirhttp.resource_type(request, PREFIX)
    limit = ctx.config.owner_search_limit
    count = limit
    params = []
    for name, value in fhirhttp.query_pairs(request):
        if name == "_count":
            try:
                count = min(int(value), limit)
            except ValueError as e:
                raise TimkitError(
                    400, IssueType.INVALID, "_count must be a non-negative integer"
                ) from e
            if count < 0:
                raise TimkitError(400, IssueType.INVALID, "_count must be a non-negative integer")
        elif name != "_cursor":
            params.append((name, value))
    params.append(("_count", str(count)))
    status, headers, raw = await upstream.fhir(ctx, "GET", f"/{resource_type}", params=params)
    if status == 200:
        bundle = orjson.loads(raw)
        links = bundle.get("link")
        if isinstance(links, list):
            bundle["link"] = [
                link
                for link in links
                if not (isinstance(link, dict) and link.get("relation") == "next")
            ]
        raw = orjson.dumps(bundle)
    return fhirhttp.relayed(ctx, status, headers, raw, PREFIX)


async def owner_read(request: web.Request) -> web.Response:
    """``GET /owner/{type}/{id}``."""
    ctx, _ = _owner(request)
    resource_type = fhirhttp.resource_type(request, PREFIX)
    status, headers, raw = await upstream.relay(
        ctx, f"/{resource_type}/{fhirhttp.resource_id(request, PREFIX)}"
    )
    return fhirhttp.relayed(ctx, status, headers, raw, PREFIX)


async def owner_create(request: web.Request) -> web.Response:
    """``POST /owner/{type}``: create an entry of the owner (rules in the module docstring)."""
    ctx, ownership = _owner(request)
    resource_type = fhirhttp.resource_type(request, PREFIX)
    body = await fhirhttp.read_body(request, resource_type, None)
    resource = await owner_checked(ownership, body, None)
    status, headers, raw = await upstream.fhir(ctx, "POST", f"/{resource_type}", body=resource)
    return fhirhttp.relayed(ctx, status, headers, raw, PREFIX)


async def owner_update(request: web.Request) -> web.Response:
    """``PUT /owner/{type}/{id}``: update an entry of the owner, or create it with that id.

    A ``PUT`` to an id that does not exist (or was deleted) is an owner create (FHIR
    update-as-create) and passes the same rules as ``POST``: ML-123482 link check, Origin
    ``owner``, ``OwnerTelematikIdEx``. The directory has no "must not exist" precondition, so
    such a create is not guarded against a concurrent create of the same id.
    """
    ctx, ownership = _owner(request)
    resource_type = fhirhttp.resource_type(request, PREFIX)
    resource_id = fhirhttp.resource_id(request, PREFIX)
    body = await fhirhttp.read_body(request, resource_type, resource_id)
    found = await upstream.read(ctx, f"{resource_type}/{resource_id}")
    if found is None:
        resource = await owner_checked(ownership, body, None)
        return await fhirhttp.send_update(ctx, request, resource, "", PREFIX)
    current, etag = found
    resource = await owner_checked(ownership, body, current)
    return await fhirhttp.send_update(ctx, request, resource, etag, PREFIX)


async def owner_delete(request: web.Request) -> web.Response:
    """``DELETE /owner/{type}/{id}``: delete an owner-created entry that nothing references."""
    ctx, ownership = _owner(request)
    resource_type = fhirhttp.resource_type(request, PREFIX)
    resource_id = fhirhttp.resource_id(request, PREFIX)
    current, _ = await fhirhttp.current(ctx, resource_type, resource_id)
    if not await ownership.owns_resource(current):
        raise fhirhttp.forbidden(
            f"{resource_type}/{resource_id} does not belong to TelematikID "
            f"{ownership.telematik_id}",
            REQ_OWNER,
        )
    if rules.origin(current) not in (None, "owner"):
        raise fhirhttp.forbidden(
            f"{resource_type}/{resource_id} is synchronised from the VZD-LDAP-Directory"
            f" (Origin {rules.origin(current)}); only the synchronisation deletes it",
            REQ_OWNER,
        )
    return await fhirhttp.delete_unreferenced(ctx, resource_type, resource_id, PREFIX)


async def owner_bundle(request: web.Request) -> web.Response:
    """``POST /owner``: batch/transaction Bundles are not accepted (see the module docstring)."""
    _owner(request)
    raise TimkitError(
        405,
        IssueType.NOT_SUPPORTED,
        "batch and transaction Bundles are not accepted on /owner; send each entry as its own"
        " request (POST/PUT/DELETE /owner/{type}[/{id}]) so that each is checked",
    )


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
    old_links = set(rules.linked(current)) if current is not None else set()
    for element, reference in rules.linked(new):
        if (element, reference) in old_links:
            continue
        if not await ownership.owns(reference):
            raise fhirhttp.unprocessable(
                f"{resource_type}.{element} references {reference}, which does not exist or"
                f" does not belong to TelematikID {tid}",
                REQ_LINK,
                [f"{resource_type}.{element}"],
            )
    return new


def _owner_created(new: dict[str, Any], tid: str) -> dict[str, Any]:
    resource_type = str(new["resourceType"])
    if resource_type == "Practitioner":
        raise fhirhttp.forbidden(
            "Practitioner entries are base entries synchronised from the VZD-LDAP-Directory;"
            " owners cannot create them",
            REQ_OWNER,
        )
    if rules.origin(new) not in (None, "owner"):
        raise fhirhttp.forbidden(
            f"Origin {rules.origin(new)!r} is reserved for synchronised entries;"
            " owner-created entries have Origin 'owner'",
            REQ_OWNER,
            [f"{resource_type}.meta.tag"],
        )
    foreign = (rules.telematik_ids(new) | rules.owner_extension_ids(new)) - {tid}
    if foreign:
        raise fhirhttp.forbidden(
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
        raise fhirhttp.forbidden(f"{reference} does not belong to TelematikID {tid}", REQ_OWNER)
    stored_origin = rules.origin(current) or "owner"
    if rules.origin(new) is None:
        new = rules.with_origin(new, stored_origin)
    changes = rules.forbidden_changes(current, new)
    if rules.origin(current) is None and rules.origin(new) == "owner":
        changes = [c for c in changes if not c.endswith(":Origin")]
    if changes:
        raise fhirhttp.forbidden(
            f"{reference}: {', '.join(changes)} may not be changed by the owner"
            f" (synchronised from the VZD-LDAP-Directory or fixed at creation)",
            REQ_OWNER,
            changes,
        )
    added = (rules.telematik_ids(new) - rules.telematik_ids(current)) - {tid}
    if added:
        raise fhirhttp.forbidden(
            f"{reference}: TelematikID {', '.join(sorted(added))} is not the token's {tid}",
            REQ_OWNER,
            [f"{resource_type}.identifier"],
        )
    if stored_origin == "owner" and resource_type in rules.OWNER_EXTENSION_TYPES:
        return rules.with_owner_extension(new, tid)
    if rules.owner_extension_ids(new) != rules.owner_extension_ids(current):
        raise fhirhttp.forbidden(
            f"{reference}: the OwnerTelematikIdEx extension may not be changed",
            REQ_OWNER,
            [f"{resource_type}.extension"],
        )
    return new


async def _check_mxids(
    ownership: Ownership, new: dict[str, Any], current: dict[str, Any] | None
) -> None:
    """ML-123626 / ML-123611: only MXIDs of the owner's own TI-M domains (see fhirhttp)."""
    kept = {value for _, value in rules.published_mxids(current)} if current else set()
    if all(value in kept for _, value in rules.published_mxids(new)):
        return
    organization = await ownership.has_organization()
    telematik_ids = {ownership.telematik_id} if organization else None
    await fhirhttp.check_mxids(ownership.ctx, new, current, telematik_ids=telematik_ids)


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
        raise fhirhttp.unprocessable(
            f"an owner-created {resource_type} must be linked to the owner's base entry via"
            f" {' or '.join(names)}",
            REQ_LINK,
            names,
        )
    for reference in links:
        if not await ownership.owns(reference):
            raise fhirhttp.unprocessable(
                f"{' or '.join(names)} must reference an entry of TelematikID"
                f" {ownership.telematik_id}; {reference} is not one",
                REQ_LINK,
                names,
            )


def setup(app: web.Application) -> None:
    """Add ``/owner`` to ``app``."""
    router = app.router
    router.add_post(PREFIX, owner_bundle)
    router.add_post(PREFIX + "/", owner_bundle)
    router.add_get(PREFIX + "/{type}", owner_search)
    router.add_post(PREFIX + "/{type}", owner_create)
    router.add_get(PREFIX + "/{type}/{id}", owner_read)
    router.add_put(PREFIX + "/{type}/{id}", owner_update)
    router.add_delete(PREFIX + "/{type}/{id}", owner_delete)
