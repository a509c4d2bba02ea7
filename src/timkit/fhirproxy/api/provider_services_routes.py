"""``/tim-provider-services``: the interface of TI-M providers (I_VZD_TIM_Provider_Services 1.4.0).

Every route but ``GET /`` (public, as ``FHIR_VZD_HOWTO_Provider`` says) needs a
provider-accesstoken (ML-123881: 401 without a valid one, 403 for another kind). Errors are
VZD ``Error{message, errors}`` (rendered by :mod:`~timkit.fhirproxy.api.app`, which also
audits every write).

* ``GET /FederationList/federationList.jws?version=&sigAlg=``: the newest list as compact
  JWS (``application/octet-stream``), 204 when ``version`` is at least the newest version;
  ``sigAlg`` ``BP256R1`` (default) or ``ES256``; anything else, or a non-integer
  ``version``, is 400.
* ``GET /localization?mxid=``: ``"org"``, ``"pract"``, ``"orgPract"`` or ``"none"``: whether
  Endpoints with that address are referenced by an Organization or HealthcareService, by a
  PractitionerRole, by both, or by neither; 404 when no Endpoint has the address. ``mxid``
  is ``matrix:u/<localpart>:<server>`` (``matrix:user/…`` and ``@…:…`` are accepted too).
* ``/federation``: the caller's domains (owner = the token's ``sub``). ``POST`` 200 / 409
  when the domain exists or an IK is taken; ``GET`` the caller's domains (``?domain=`` one:
  404 unknown, 403 another provider's); ``PUT /federation/{domain}`` (path = body domain, else
  400; 404/403 as GET); ``DELETE /federation/{domain}`` 204 (404/403). ``POST`` and ``PUT``
  need the TelematikID's Organization in the FHIR-Directory to be active (400 otherwise);
  with no Organization of that TelematikID at all they are rejected as well (400): the
  interface only admits domains of organisations the directory knows as active.
* ``GET /federationCheck``: 200 ``{inactiveOrganizationDomains: [Domain]}`` listing the
  caller's domains whose Organization is inactive or gone, or 204 when there are none.

An Organization counts as active unless its ``active`` is ``false`` (FHIR: absent means
active); of several Organizations with one TelematikID, one active one suffices.

What could be read two ways is refused, never guessed at (issue 14): ``Authorization`` given
twice is 401; a query parameter given twice (``version``, ``sigAlg``, ``mxid``, ``domain``)
is 400 naming it; a ``{domain}`` in the path that is no DNS name is 400 (``domain``), as
``?domain=`` is.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, TypeVar

from aiohttp import web

from timkit.core import jsonbody
from timkit.core.errors import IssueType, TimkitError
from timkit.core.request_target import UnparsableRequest, single_header
from timkit.fhirproxy import upstream
from timkit.fhirproxy.auth.access_tokens import SPECS, Kind, authorize
from timkit.fhirproxy.context import CONTEXT_KEY, FhirProxyContext, context
from timkit.fhirproxy.handlers.signed_list import (
    AF_DOMAINS,
    Domain,
    Federation,
    SigAlg,
    check_domain_name,
    parse_domain,
)

BASE = "/tim-provider-services"
TELEMATIK_ID_SYSTEM = "https://gematik.de/fhir/sid/telematik-id"
INFO = {
    "title": "I_VZD_TIM_Provider_Services",
    "description": "REST interface to retrieve the TI-Messenger federation list and to "
    "administrate the TI-Messenger domains.",
    "version": "1.4.0",
}

_MXID = re.compile(
    r"^(?:matrix:u/|matrix:user/|@)(?P<local>[\x21-\x39\x3b-\x7e]+)"
    r":(?P<server>(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?)$"
)
_VERSION = re.compile(r"^[0-9]{1,18}$")
_LOOKUP_CHUNK = 40

T = TypeVar("T")


class OrgState(Enum):
    """What the FHIR-Directory knows about the Organization of a TelematikID."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    MISSING = "missing"


def federation(request: web.Request) -> Federation:
    """The federation (domains and lists) of the app serving ``request``."""
    return request.app[CONTEXT_KEY].federation


async def _blocking(ctx: FhirProxyContext, function: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(ctx.executor, function, *args)


def _bad_request(message: str, attribute: str | None = None) -> TimkitError:
    errors = [{"attributeName": attribute, "attributeError": message}] if attribute else []
    return TimkitError(
        400, IssueType.INVALID, message, requirement=AF_DOMAINS, extra={"errors": errors}
    )


async def _json_body(request: web.Request) -> Any:
    try:
        return jsonbody.parse_json(await request.read())
    except jsonbody.JsonBodyError as e:  # not UTF-8, not JSON (where), nested too deep
        raise _bad_request(str(e)) from None


def _owner(request: web.Request) -> str:
    """The caller's client id (the provider-accesstoken's ``sub``).

    Raises:
        TimkitError: 401 without a valid provider-accesstoken or with ``Authorization``
            given twice; 403 for a token of another kind (ML-123881).
    """
    try:
        single_header(request.headers, "Authorization")
    except UnparsableRequest as e:
        requirement = SPECS[Kind.PROVIDER].requirement
        raise TimkitError(401, "invalid_token", str(e), requirement=requirement) from None
    claims = authorize(request, context(request).tokens, Kind.PROVIDER)
    return str(claims["sub"])


def _query(request: web.Request, name: str) -> str | None:
    """The one value of query parameter ``name`` (None when absent); 400 when repeated."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise _bad_request(f"query parameter {name} given {len(values)} times", name)
    return values[0] if values else None


def _path_domain(request: web.Request) -> str:
    """``{domain}`` of the path, checked like a Domain's ``domain``; 400 when no DNS name."""
    name = request.match_info["domain"]
    try:
        check_domain_name(name)
    except ValueError as e:
        raise _bad_request(f"domain {e}", "domain") from e
    return name


# -- upstream look-ups ---------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("$", "\\$")


async def organization_states(
    ctx: FhirProxyContext, telematik_ids: Iterable[str]
) -> dict[str, OrgState]:
    """Per TelematikID, the state of its Organization(s) in the FHIR-Directory."""
    wanted = sorted(set(telematik_ids))
    states = dict.fromkeys(wanted, OrgState.MISSING)
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        identifiers = ",".join(f"{TELEMATIK_ID_SYSTEM}|{_escape(t)}" for t in chunk)
        bundle = await upstream.fhir_json(
            ctx, "/Organization", [("identifier", identifiers), ("_count", "1000")]
        )
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            active = resource.get("active") is not False
            for identifier in resource.get("identifier", []):
                tid = identifier.get("value")
                if identifier.get("system") != TELEMATIK_ID_SYSTEM or tid not in states:
                    continue
                if active:
                    states[tid] = OrgState.ACTIVE
                elif states[tid] is OrgState.MISSING:
                    states[tid] = OrgState.INACTIVE
    return states


async def _require_active_organization(ctx: FhirProxyContext, telematik_id: str) -> None:
    state = (await organization_states(ctx, [telematik_id]))[telematik_id]
    if state is OrgState.INACTIVE:
        raise _bad_request(
            "organization which belongs to the telematikID is not active", "telematikID"
        )
    if state is OrgState.MISSING:
        raise _bad_request(
            f"no Organization with telematikID {telematik_id} in the FHIR-Directory", "telematikID"
        )


def normalise_mxid(value: str) -> str:
    """``value`` (``matrix:u/…``, ``matrix:user/…`` or ``@…``) as ``matrix:u/local:server``.

    Raises:
        TimkitError: 400 for anything else.
    """
    match = _MXID.match(value)
    if match is None or len(value) > 260:
        raise _bad_request(
            "mxid must be a Matrix user ID in URL form, matrix:u/localpart:domain", "mxid"
        )
    return f"matrix:u/{match['local']}:{match['server']}"


# -- handlers ------------------------------------------------------------------------------


async def info(_request: web.Request) -> web.Response:
    """``GET /``: the interface's title, description and version (no token needed)."""
    return web.json_response(INFO)


async def federation_list(request: web.Request) -> web.Response:
    """``GET /FederationList/federationList.jws``: the newest signed list, or 204."""
    _owner(request)
    ctx = context(request)
    raw_version = _query(request, "version")
    if raw_version is not None and not _VERSION.match(raw_version):
        raise _bad_request("version must be a non-negative integer", "version")
    raw_alg = _query(request, "sigAlg")
    if raw_alg is None:
        raw_alg = SigAlg.BP256R1.value
    if raw_alg not in SigAlg.__members__:
        raise _bad_request("sigAlg must be BP256R1 or ES256", "sigAlg")
    alg = SigAlg(raw_alg)
    latest = await _blocking(ctx, federation(request).latest)
    if raw_version is not None and int(raw_version) >= latest.version:
        return web.Response(status=204)
    body = await _blocking(ctx, latest.jws, alg)
    return web.Response(
        body=body,
        content_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="federationList.jws"'},
    )


async def localization(request: web.Request) -> web.Response:
    """``GET /localization?mxid=``: where in the directory an MXID is (whereIs)."""
    _owner(request)
    ctx = context(request)
    mxid = normalise_mxid(_query(request, "mxid") or "")
    bundle = await upstream.fhir_json(
        ctx,
        "/Endpoint",
        [
            ("address", _escape(mxid)),
            ("_revinclude", "Organization:endpoint"),
            ("_revinclude", "HealthcareService:endpoint"),
            ("_revinclude", "PractitionerRole:endpoint"),
            ("_count", "1000"),
        ],
    )
    types = {e.get("resource", {}).get("resourceType") for e in bundle.get("entry", [])}
    if "Endpoint" not in types:
        raise TimkitError(
            404, IssueType.NOT_FOUND, f"{mxid} is not in the FHIR-Directory", requirement=AF_DOMAINS
        )
    org = bool(types & {"Organization", "HealthcareService"})
    pract = "PractitionerRole" in types
    where = "orgPract" if org and pract else "org" if org else "pract" if pract else "none"
    return web.json_response(where)


async def add_domain(request: web.Request) -> web.Response:
    """``POST /federation``: register a domain for the caller; 200 with the Domain."""
    owner = _owner(request)
    ctx = context(request)
    domain = parse_domain(await _json_body(request), owner=owner)
    if await _blocking(ctx, ctx.domains.contains, domain.domain):
        raise TimkitError(
            409,
            IssueType.DUPLICATE,
            f"domain {domain.domain} is already registered",
            requirement=AF_DOMAINS,
            extra={"errors": [{"attributeName": "domain", "attributeError": "already registered"}]},
        )
    await _require_active_organization(ctx, domain.telematik_id)
    await _blocking(ctx, federation(request).add, domain)
    return web.json_response(domain.to_api())


async def _own_domain(request: web.Request, name: str, owner: str) -> Domain:
    ctx = context(request)
    existing = await _blocking(ctx, ctx.domains.get, name)
    if existing is None:
        raise TimkitError(
            404,
            IssueType.NOT_FOUND,
            f"domain {name.lower()} is not registered",
            requirement=AF_DOMAINS,
        )
    if existing.tim_anbieter != owner:
        raise TimkitError(
            403,
            IssueType.FORBIDDEN,
            f"domain {existing.domain} was registered by another TI-M provider",
            requirement=AF_DOMAINS,
        )
    return existing


async def get_domains(request: web.Request) -> web.Response:
    """``GET /federation[?domain=]``: the caller's domains (or the one named)."""
    owner = _owner(request)
    ctx = context(request)
    name = _query(request, "domain")
    if name is None:
        domains = await _blocking(ctx, ctx.domains.of_provider, owner)
    else:
        try:
            check_domain_name(name)
        except ValueError as e:
            raise _bad_request(str(e), "domain") from e
        domains = [await _own_domain(request, name, owner)]
    return web.json_response([d.to_api() for d in domains])


async def update_domain(request: web.Request) -> web.Response:
    """``PUT /federation/{domain}``: change one of the caller's domains; 200 with it."""
    owner = _owner(request)
    ctx = context(request)
    name = _path_domain(request)
    await _own_domain(request, name, owner)
    domain = parse_domain(await _json_body(request), owner=owner)
    if domain.domain != name.lower():
        raise _bad_request("the domain in the body must equal the domain in the path", "domain")
    await _require_active_organization(ctx, domain.telematik_id)
    await _blocking(ctx, federation(request).update, domain)
    return web.json_response(domain.to_api())


async def delete_domain(request: web.Request) -> web.Response:
    """``DELETE /federation/{domain}``: remove one of the caller's domains; 204."""
    owner = _owner(request)
    ctx = context(request)
    name = _path_domain(request)
    await _own_domain(request, name, owner)
    await _blocking(ctx, federation(request).remove, name, owner)
    return web.Response(status=204)


async def federation_check(request: web.Request) -> web.Response:
    """``GET /federationCheck``: the caller's domains whose Organization is not active."""
    owner = _owner(request)
    ctx = context(request)
    domains = await _blocking(ctx, ctx.domains.of_provider, owner)
    states = await organization_states(ctx, (d.telematik_id for d in domains))
    inactive = [d.to_api() for d in domains if states[d.telematik_id] is not OrgState.ACTIVE]
    if not inactive:
        return web.Response(status=204)
    return web.json_response({"inactiveOrganizationDomains": inactive})


def setup(app: web.Application) -> None:
    """Add the ``/tim-provider-services`` routes."""
    app.router.add_get(BASE, info)
    app.router.add_get(BASE + "/", info)
    app.router.add_get(BASE + "/FederationList/federationList.jws", federation_list)
    app.router.add_get(BASE + "/localization", localization)
    app.router.add_post(BASE + "/federation", add_domain)
    app.router.add_get(BASE + "/federation", get_domains)
    app.router.add_put(BASE + "/federation/{domain}", update_domain)
    app.router.add_delete(BASE + "/federation/{domain}", delete_domain)
    app.router.add_get(BASE + "/federationCheck", federation_check)
