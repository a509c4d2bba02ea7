"""``/search``: the read-only FHIR face for TI-M clients (search-accesstoken, ML-123485).

Routes: ``GET /search/{type}`` (search), ``GET /search/{type}/{id}`` (read) and
``GET /search/metadata``. Every other method gives 405, every other path 404.

Only the interactions the CapabilityStatement declares pass: a search of a directory type and
a read of a FHIR id (:func:`~timkit.fhirproxy.api.fhir_http.fhir_path` on the segments of
:func:`timkit.core.request_target.parse_target`); anything else (``_history``, vread,
operations, an id with ``/`` or ``?`` encoded into it) is refused before the directory is
asked. Every answer is parsed: a read must be the resource asked for, a search a
``searchset`` Bundle, and every entry of that Bundle is judged on its own (entries without
a directory resource are dropped). Links are rebased from the directory's URL to
``<base>/search`` by a bytes replacement. Visibility
(:func:`timkit.fhirproxy.handlers.rules.hidden`) works in two places:

* pushed into the query for the searched type, so paging and ``total`` stay right:
  ``Endpoint`` searches get ``status=active``; an insured caller's ``Endpoint`` and
  ``Organization`` searches get ``…Visibility:not=hide-versicherte``;
* applied to every entry of the answer, including ``_include`` d ones. A hidden resource read
  by id is 404, like a deleted or missing one.

For an insured caller, a ``HealthcareService`` or ``PractitionerRole`` of a hidden
Organization is hidden too. ``HealthcareService`` searches get
``organization.organizationVisibility:not=hide-versicherte`` (its profile makes ``providedBy``
mandatory, so nothing visible is lost). ``PractitionerRole.organization`` is optional, so a
chained filter would drop the roles without one: those are filtered from the answer instead,
which corrects ``total`` for the dropped matches of that page only. Which Organizations are
hidden is asked of the directory at most every :data:`visibility.HIDDEN_TTL` seconds per process
(:class:`visibility.HiddenOrganizations`), and only when an insured caller's answer holds a
HealthcareService or PractitionerRole.

``/search/metadata`` is the directory's CapabilityStatement made to say what ``/search``
does (:func:`visibility.read_only_capability`): ``read`` and ``search-type`` only.

A caller is *insured* when the domain of the MXID in the token's ``sub`` is registered with
``isInsurance=true`` (the federation list). The answer is cached for :data:`INSURED_TTL`
seconds. A search token carrying a boolean ``isInsurance`` claim is taken at its word.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from timkit.core.errors import IssueType, TimkitError
from timkit.fhirproxy import upstream
from timkit.fhirproxy.api.fhir_http import (
    checked_answer,
    fhir_path,
    fhir_response,
    relayed,
    request_target,
    with_params,
)
from timkit.fhirproxy.api.token_gate import authorize
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.context import FhirProxyContext, context
from timkit.fhirproxy.handlers import rules, visibility

log = logging.getLogger(__name__)

PREFIX = "/search"
INSURED_TTL = 60.0


INSURED_KEY = web.AppKey("fhirproxy.insured", dict)
"""Per app: ``{domain: (expires at (monotonic), is insurance)}``."""


HIDDEN_KEY = web.AppKey("fhirproxy.hidden_organizations", visibility.HiddenOrganizations)


async def insured(request: web.Request, ctx: FhirProxyContext, claims: dict[str, Any]) -> bool:
    """Whether the caller's homeserver domain is registered as an insurance domain."""
    claim = claims.get("isInsurance")
    if isinstance(claim, bool):
        return claim
    sub = str(claims.get("sub", ""))
    _, _, domain = sub.removeprefix(rules.MXID_PREFIX).partition(":")
    if not domain:
        return False
    cache: dict[str, tuple[float, bool]] = request.app[INSURED_KEY]
    now = time.monotonic()
    cached = cache.get(domain)
    if cached is not None and cached[0] > now:
        return cached[1]
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(ctx.executor, visibility.lookup_insured, ctx, domain.lower())
    if len(cache) > 10_000:
        cache.clear()
    cache[domain] = (now + INSURED_TTL, found)
    return found


_ORGANIZATION_LINKED = (b'"HealthcareService"', b'"PractitionerRole"')


async def _hidden_organizations(
    request: web.Request, ctx: FhirProxyContext, raw: bytes, insured: bool
) -> frozenset[str]:
    """The hidden Organizations, when they matter for ``raw``; else an empty set (no I/O)."""
    if not insured or not any(marker in raw for marker in _ORGANIZATION_LINKED):
        return frozenset()
    return await request.app[HIDDEN_KEY].get(ctx)


async def search_view(
    request: web.Request, prefix: str = PREFIX, decorate: visibility.Decorate | None = None
) -> web.Response:
    """``GET <prefix>/{type}[/{id}]`` with a search token: relay, hide, optionally decorate.

    Only the interactions :func:`visibility.read_only_capability` declares reach the directory: a
    type-level search or a read of a FHIR id (:func:`~timkit.fhirproxy.api.fhir_http.fhir_path`).
    Every answer is parsed and filtered (:func:`visibility.apply_visibility`); a hidden, deleted or
    missing resource read by id is the same 404. ``decorate`` (the PASSporT mode) is called on every
    resource shown, after hiding.
    """
    ctx = context(request)
    claims = authorize(request, ctx.tokens, Kind.SEARCH)
    name, resource_id = fhir_path(request, prefix)
    is_insured = await insured(request, ctx, claims)
    if resource_id is None:
        # The client's raw query string, as parse_target accepted it (visible ASCII, valid
        # escapes): re-encoding it would change what the directory reads.
        query = request_target(request).query
        path_qs = f"/{name}" + with_params(query, visibility.pushdown(name, is_insured))
    else:
        path_qs = f"/{name}/{resource_id}"
    status, headers, raw = await upstream.relay(ctx, path_qs)
    if resource_id is not None and status in (404, 410):
        raise visibility.not_found(name, resource_id)
    checked_answer(status, raw)
    if status == 200:
        hidden_organizations = await _hidden_organizations(request, ctx, raw, is_insured)
        raw = visibility.apply_visibility(
            raw, claims, is_insured, hidden_organizations, decorate, name, resource_id
        )
    return relayed(ctx, status, headers, raw, prefix)


async def search_metadata(request: web.Request, prefix: str = PREFIX) -> web.Response:
    """``GET <prefix>/metadata``: the directory's CapabilityStatement, made read-only.

    See :func:`visibility.read_only_capability`. The directory's ``ETag`` is not passed on, since
    the body is not the directory's.
    """
    ctx = context(request)
    authorize(request, ctx.tokens, Kind.SEARCH)
    status, headers, raw = await upstream.relay(ctx, "/metadata")
    if status != 200:
        return relayed(ctx, status, headers, raw, prefix)
    statement = visibility.read_only_capability(orjson.loads(raw), ctx.base + prefix)
    return fhir_response(200, orjson.dumps(statement))


async def read_only(request: web.Request) -> web.Response:
    """Anything but the reads on ``/search``: 405 for other methods, 404 for other paths."""
    ctx = context(request)
    authorize(request, ctx.tokens, Kind.SEARCH)
    if request.method in ("GET", "HEAD"):
        raise TimkitError(
            404, IssueType.NOT_FOUND, f"{request.path}: not found (read and search only)"
        )
    raise TimkitError(
        405,
        IssueType.NOT_SUPPORTED,
        f"{request.method} is not allowed: {PREFIX} is read-only (GET search and read)",
    )


def setup(app: web.Application) -> None:
    """Add ``/search`` to ``app`` (and the state :func:`search_view` needs under any prefix)."""
    app[INSURED_KEY] = {}
    app[HIDDEN_KEY] = visibility.HiddenOrganizations()
    router = app.router
    router.add_get(PREFIX + "/metadata", search_metadata)
    router.add_get(PREFIX + "/{type}", search_view)
    router.add_get(PREFIX + "/{type}/{id}", search_view)
    router.add_route("*", PREFIX + "{tail:(/.*)?}", read_only)
