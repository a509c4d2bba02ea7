"""``/owner``: FHIR writes of owners (owner-accesstoken, ``sub`` = TelematikID; AF_10037).

Search (``_count`` clamped to ``owner_search_limit``, no ``next`` link, so at most that many
results), read, and writes that pass the owner rules:

* ML-123880: only the six directory types (400);
* ML-123874: only resources of the token's TelematikID (see :class:`owner.Ownership`); on
  ``ldap``-origin entries only what LDAP does not sync (:func:`rules.forbidden_changes`); no
  foreign TelematikID in ``identifier`` or ``OwnerTelematikIdEx``; owners cannot create
  Practitioners (base entries) nor delete ``ldap``-origin entries (403);
* ML-123626 / ML-123611: every MXID an entry newly publishes (a TI-M Endpoint's
  ``address``, MXIDs in ``telecom``) must be well-formed and on a TI-M domain the
  federation list registers for the owner's TelematikID (an organisation), or on any
  domain of the list (a practitioner, an owner without an Organization) (403, 422 when
  malformed; :func:`fhir_checks.check_mxids`);
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

Writes are audited by the edge middleware (:mod:`timkit.fhirproxy.api.app`).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from timkit.core.errors import IssueType, TimkitError
from timkit.fhirproxy import upstream
from timkit.fhirproxy.api import fhir_http
from timkit.fhirproxy.api.token_gate import authorize
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.context import FhirProxyContext, context
from timkit.fhirproxy.handlers import fhir_checks, owner, rules

PREFIX = "/owner"


def _owner(request: web.Request) -> tuple[FhirProxyContext, owner.Ownership]:
    ctx = context(request)
    claims = authorize(request, ctx.tokens, Kind.OWNER)
    return ctx, owner.Ownership(ctx, str(claims["sub"]))


async def owner_search(request: web.Request) -> web.Response:
    """``GET /owner/{type}``: a directory search capped at ``owner_search_limit`` results."""
    ctx, _ = _owner(request)
    resource_type = fhir_http.resource_type(request, PREFIX)
    limit = ctx.config.owner_search_limit
    count = limit
    params = []
    for name, value in fhir_http.query_pairs(request):
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
    return fhir_http.relayed(ctx, status, headers, raw, PREFIX)


async def owner_read(request: web.Request) -> web.Response:
    """``GET /owner/{type}/{id}``."""
    ctx, _ = _owner(request)
    resource_type = fhir_http.resource_type(request, PREFIX)
    status, headers, raw = await upstream.relay(
        ctx, f"/{resource_type}/{fhir_http.resource_id(request, PREFIX)}"
    )
    return fhir_http.relayed(ctx, status, headers, raw, PREFIX)


async def owner_create(request: web.Request) -> web.Response:
    """``POST /owner/{type}``: create an entry of the owner (rules in the module docstring)."""
    ctx, ownership = _owner(request)
    resource_type = fhir_http.resource_type(request, PREFIX)
    body = await fhir_http.read_body(request, resource_type, None)
    resource = await owner.owner_checked(ownership, body, None)
    status, headers, raw = await upstream.fhir(ctx, "POST", f"/{resource_type}", body=resource)
    return fhir_http.relayed(ctx, status, headers, raw, PREFIX)


async def owner_update(request: web.Request) -> web.Response:
    """``PUT /owner/{type}/{id}``: update an entry of the owner, or create it with that id.

    A ``PUT`` to an id that does not exist (or was deleted) is an owner create (FHIR
    update-as-create) and passes the same rules as ``POST``: ML-123482 link check, Origin
    ``owner``, ``OwnerTelematikIdEx``. The directory has no "must not exist" precondition, so
    such a create is not guarded against a concurrent create of the same id.
    """
    ctx, ownership = _owner(request)
    resource_type = fhir_http.resource_type(request, PREFIX)
    resource_id = fhir_http.resource_id(request, PREFIX)
    body = await fhir_http.read_body(request, resource_type, resource_id)
    found = await upstream.read(ctx, f"{resource_type}/{resource_id}")
    if found is None:
        resource = await owner.owner_checked(ownership, body, None)
        return await fhir_http.send_update(ctx, request, resource, "", PREFIX)
    current, etag = found
    resource = await owner.owner_checked(ownership, body, current)
    return await fhir_http.send_update(ctx, request, resource, etag, PREFIX)


async def owner_delete(request: web.Request) -> web.Response:
    """``DELETE /owner/{type}/{id}``: delete an owner-created entry that nothing references."""
    ctx, ownership = _owner(request)
    resource_type = fhir_http.resource_type(request, PREFIX)
    resource_id = fhir_http.resource_id(request, PREFIX)
    current, _ = await fhir_checks.current(ctx, resource_type, resource_id)
    if not await ownership.owns_resource(current):
        raise fhir_checks.forbidden(
            f"{resource_type}/{resource_id} does not belong to TelematikID "
            f"{ownership.telematik_id}",
            owner.REQ_OWNER,
        )
    if rules.origin(current) not in (None, "owner"):
        raise fhir_checks.forbidden(
            f"{resource_type}/{resource_id} is synchronised from the VZD-LDAP-Directory"
            f" (Origin {rules.origin(current)}); only the synchronisation deletes it",
            owner.REQ_OWNER,
        )
    return await fhir_http.delete_unreferenced(ctx, resource_type, resource_id, PREFIX)


async def owner_bundle(request: web.Request) -> web.Response:
    """``POST /owner``: batch/transaction Bundles are not accepted (see the module docstring)."""
    _owner(request)
    raise TimkitError(
        405,
        IssueType.NOT_SUPPORTED,
        "batch and transaction Bundles are not accepted on /owner; send each entry as its own"
        " request (POST/PUT/DELETE /owner/{type}[/{id}]) so that each is checked",
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
