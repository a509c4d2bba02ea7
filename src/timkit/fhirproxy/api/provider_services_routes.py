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
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from timkit.core import jsonbody
from timkit.core.errors import IssueType, TimkitError
from timkit.core.request_target import UnparsableRequest, single_header
from timkit.fhirproxy.api.token_gate import authorize
from timkit.fhirproxy.auth.access_tokens import SPECS, Kind
from timkit.fhirproxy.context import CONTEXT_KEY, FhirProxyContext, context
from timkit.fhirproxy.handlers.provider_services import (
    OrgState,
    bad_request,
    normalise_mxid,
    organization_states,
    own_domain,
    require_active_organization,
    where_is,
)
from timkit.fhirproxy.handlers.signed_list import (
    AF_DOMAINS,
    Federation,
    SigAlg,
    check_domain_name,
    parse_domain,
)

BASE = "/tim-provider-services"
INFO = {
    "title": "I_VZD_TIM_Provider_Services",
    "description": "REST interface to retrieve the TI-Messenger federation list and to "
    "administrate the TI-Messenger domains.",
    "version": "1.4.0",
}

_VERSION = re.compile(r"^[0-9]{1,18}$")

T = TypeVar("T")


def federation(request: web.Request) -> Federation:
    """The federation (domains and lists) of the app serving ``request``."""
    return request.app[CONTEXT_KEY].federation


async def _blocking(ctx: FhirProxyContext, function: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(ctx.executor, function, *args)


async def _json_body(request: web.Request) -> Any:
    try:
        return jsonbody.parse_json(await request.read())
    except jsonbody.JsonBodyError as e:  # not UTF-8, not JSON (where), nested too deep
        raise bad_request(str(e)) from None


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
        raise bad_request(f"query parameter {name} given {len(values)} times", name)
    return values[0] if values else None


def _path_domain(request: web.Request) -> str:
    """``{domain}`` of the path, checked like a Domain's ``domain``; 400 when no DNS name."""
    name = request.match_info["domain"]
    try:
        check_domain_name(name)
    except ValueError as e:
        raise bad_request(f"domain {e}", "domain") from e
    return name


# -- upstream look-ups ---------------------------------------------------------------------


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
        raise bad_request("version must be a non-negative integer", "version")
    raw_alg = _query(request, "sigAlg")
    if raw_alg is None:
        raw_alg = SigAlg.BP256R1.value
    if raw_alg not in SigAlg.__members__:
        raise bad_request("sigAlg must be BP256R1 or ES256", "sigAlg")
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
    return web.json_response(await where_is(ctx, mxid))


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
    await require_active_organization(ctx, domain.telematik_id)
    await _blocking(ctx, federation(request).add, domain)
    return web.json_response(domain.to_api())


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
            raise bad_request(str(e), "domain") from e
        domains = [await own_domain(ctx, name, owner)]
    return web.json_response([d.to_api() for d in domains])


async def update_domain(request: web.Request) -> web.Response:
    """``PUT /federation/{domain}``: change one of the caller's domains; 200 with it."""
    owner = _owner(request)
    ctx = context(request)
    name = _path_domain(request)
    await own_domain(ctx, name, owner)
    domain = parse_domain(await _json_body(request), owner=owner)
    if domain.domain != name.lower():
        raise bad_request("the domain in the body must equal the domain in the path", "domain")
    await require_active_organization(ctx, domain.telematik_id)
    await _blocking(ctx, federation(request).update, domain)
    return web.json_response(domain.to_api())


async def delete_domain(request: web.Request) -> web.Response:
    """``DELETE /federation/{domain}``: remove one of the caller's domains; 204."""
    owner = _owner(request)
    ctx = context(request)
    name = _path_domain(request)
    await own_domain(ctx, name, owner)
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
