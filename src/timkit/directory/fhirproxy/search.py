"""``/search``: the read-only FHIR face for TI-M clients (search-accesstoken, ML-123485).

Routes: ``GET /search/{type}`` (search), ``GET /search/{type}/{id}`` (read) and
``GET /search/metadata``. Every other method gives 405, every other path 404.

The directory's bytes are relayed. They are parsed only when they may hold something to
hide: an Endpoint, or, for an insured caller, a visibility extension. Links are rebased from
the directory's URL to ``<base>/search`` by a bytes replacement. Visibility
(:func:`timkit.directory.fhirproxy.rules.hidden`) works in two places:

* pushed into the query for the searched type, so paging and ``total`` stay right:
  ``Endpoint`` searches get ``status=active``; an insured caller's ``Endpoint`` and
  ``Organization`` searches get ``…Visibility:not=hide-versicherte``;
* applied to every entry of the answer, including ``_include`` d ones. A hidden resource read
  by id is 404.

A caller is *insured* when the domain of the MXID in the token's ``sub`` is registered with
``isInsurance=true`` (the federation list). The answer is cached for :data:`INSURED_TTL`
seconds. A search token carrying a boolean ``isInsurance`` claim is taken at its word.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from timkit.core.errors import IssueType, TimkitError
from timkit.directory.fhirproxy import rules, upstream
from timkit.directory.fhirproxy.context import ProxyContext, context
from timkit.directory.fhirproxy.fhirhttp import filter_bundle, relayed, resource_type, with_params
from timkit.directory.fhirproxy.tokens import Kind, authorize

PREFIX = "/search"
INSURED_TTL = 60.0

Decorate = Callable[[dict[str, Any], dict[str, Any]], None]
"""Changes one shown resource in place, given the caller's token claims (PASSporT mode)."""

INSURED_KEY = web.AppKey("fhirproxy.insured", dict)
"""Per app: ``{domain: (expires at (monotonic), is insurance)}``."""


async def insured(request: web.Request, ctx: ProxyContext, claims: dict[str, Any]) -> bool:
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
    found = await loop.run_in_executor(ctx.executor, _lookup_insured, ctx, domain.lower())
    if len(cache) > 10_000:
        cache.clear()
    cache[domain] = (now + INSURED_TTL, found)
    return found


def _lookup_insured(ctx: ProxyContext, domain: str) -> bool:
    found = ctx.domains.get(domain)
    return found is not None and found.is_insurance


def pushdown(resource_type: str, insured: bool) -> list[tuple[str, str]]:
    """Search parameters added to a ``resource_type`` search so hidden matches never come."""
    if resource_type == "Endpoint":
        extra = [("status", "active")]
        if insured:
            extra.append(("endpointVisibility:not", rules.HIDE_INSURED))
        return extra
    if resource_type == "Organization" and insured:
        return [("organizationVisibility:not", rules.HIDE_INSURED)]
    return []


def _needs_parsing(raw: bytes, insured: bool, decorate: Decorate | None) -> bool:
    return decorate is not None or b'"Endpoint"' in raw or (insured and b"Visibility" in raw)


async def search_view(
    request: web.Request, prefix: str = PREFIX, decorate: Decorate | None = None
) -> web.Response:
    """``GET <prefix>/{type}[/{id}]`` with a search token: relay, hide, optionally decorate.

    ``decorate`` (the PASSporT mode) is called on every resource shown, after hiding.
    """
    ctx = context(request)
    claims = authorize(request, ctx.tokens, Kind.SEARCH)
    name = resource_type(request)
    is_insured = await insured(request, ctx, claims)
    resource_id = request.match_info.get("id")
    if resource_id is None:
        path_qs = f"/{name}" + with_params(request.query_string, pushdown(name, is_insured))
    else:
        path_qs = f"/{name}/{resource_id}"
    status, headers, raw = await upstream.relay(ctx, path_qs)
    if status == 200 and _needs_parsing(raw, is_insured, decorate):
        raw = _apply_visibility(raw, claims, is_insured, decorate, resource_id)
    return relayed(ctx, status, headers, raw, prefix)


def _apply_visibility(
    raw: bytes,
    claims: dict[str, Any],
    insured: bool,
    decorate: Decorate | None,
    resource_id: str | None,
) -> bytes:
    document = orjson.loads(raw)
    if resource_id is not None:
        if rules.hidden(document, insured=insured):
            raise TimkitError(
                404,
                IssueType.NOT_FOUND,
                f"{document.get('resourceType')}/{resource_id} not found",
            )
        if decorate is not None:
            decorate(claims, document)
        return orjson.dumps(document)

    def keep(resource: dict[str, Any]) -> bool:
        if rules.hidden(resource, insured=insured):
            return False
        if decorate is not None:
            decorate(claims, resource)
        return True

    filter_bundle(document, keep)
    return orjson.dumps(document)


async def search_metadata(request: web.Request, prefix: str = PREFIX) -> web.Response:
    """``GET <prefix>/metadata``: the directory's CapabilityStatement."""
    ctx = context(request)
    authorize(request, ctx.tokens, Kind.SEARCH)
    status, headers, raw = await upstream.relay(ctx, "/metadata")
    return relayed(ctx, status, headers, raw, prefix)


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
    router = app.router
    router.add_get(PREFIX + "/metadata", search_metadata)
    router.add_get(PREFIX + "/{type}", search_view)
    router.add_get(PREFIX + "/{type}/{id}", search_view)
    router.add_route("*", PREFIX + "{tail:(/.*)?}", read_only)
