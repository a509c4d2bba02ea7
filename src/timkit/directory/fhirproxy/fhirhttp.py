"""HTTP helpers shared by the FHIR faces of the FHIR-Proxy (``/search``, ``/owner``, provider FHIR).

Contracts:

* :func:`resource_type` is the only way a handler reads ``{type}`` from the URL: anything but
  the six directory types is a 400 naming ML-123880;
* :func:`read_body` is the only way a handler reads a resource from the request: a JSON object
  whose ``resourceType`` (and ``id``, for an update) match the URL, else 400;
* :func:`relayed` turns the directory's answer into the client's: the body's links and the
  ``Location`` header are rebased onto the proxy path (:func:`upstream.rebase`), and only
  :data:`upstream.RELAYED_HEADERS` pass;
* :func:`filter_bundle` drops the entries a predicate refuses and keeps ``total`` right for
  the dropped ``match`` entries of that page;
* :func:`delete_unreferenced` deletes only what no other entry references (409 otherwise).

Errors are raised as :class:`TimkitError`; :mod:`timkit.directory.fhirproxy.api` renders them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from timkit.core.errors import IssueType, TimkitError
from timkit.directory.fhirproxy import rules, upstream
from timkit.directory.fhirproxy.context import ProxyContext
from timkit.directory.validation import parse_resource_json

FHIR_JSON = "application/fhir+json"
REQ_TYPES = "ML-123880"


def resource_type(request: web.Request) -> str:
    """The URL's ``{type}``; 400 (ML-123880) unless it is one of the six directory types."""
    name = request.match_info["type"]
    if name not in rules.DIRECTORY_TYPES:
        raise TimkitError(
            400,
            IssueType.NOT_SUPPORTED,
            f"{name!r} is not a directory resource type (one of "
            f"{', '.join(sorted(rules.DIRECTORY_TYPES))})",
            requirement=REQ_TYPES,
        )
    return name


def fhir_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    """``body`` (already serialised) as ``application/fhir+json``."""
    return web.Response(body=body, status=status, content_type=FHIR_JSON, headers=headers)


def relayed(
    ctx: ProxyContext, status: int, headers: dict[str, str], raw: bytes, prefix: str
) -> web.Response:
    """The directory's answer for the client: links and ``Location`` rebased onto ``prefix``."""
    if status == 204 or not raw:
        return web.Response(status=status, headers=upstream.rebase_headers(ctx, headers, prefix))
    return fhir_response(
        status, upstream.rebase(ctx, raw, prefix), upstream.rebase_headers(ctx, headers, prefix)
    )


def bundle_entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The Bundle's entries that are objects (anything else is skipped)."""
    entries = bundle.get("entry")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def filter_bundle(bundle: dict[str, Any], keep: Callable[[dict[str, Any]], bool]) -> None:
    """Drop entries whose resource ``keep`` refuses; correct ``total`` for dropped matches.

    ``keep`` may change the resource it is given (it sees each one once). Entries without a
    resource are kept. ``bundle`` is changed in place.
    """
    kept, dropped = [], 0
    for entry in bundle_entries(bundle):
        resource = entry.get("resource")
        if isinstance(resource, dict) and not keep(resource):
            if entry.get("search", {}).get("mode", "match") == "match":
                dropped += 1
            continue
        kept.append(entry)
    if "entry" in bundle:
        bundle["entry"] = kept
    if dropped and isinstance(bundle.get("total"), int):
        bundle["total"] = max(0, bundle["total"] - dropped)


async def read_body(
    request: web.Request, resource_type: str, resource_id: str | None
) -> dict[str, Any]:
    """The request's resource; 400 unless it is a JSON ``resource_type`` (with ``resource_id``)."""
    body = parse_resource_json(await request.read())
    if body.get("resourceType") != resource_type:
        raise TimkitError(
            400,
            IssueType.INVALID,
            f"resourceType {body.get('resourceType')!r} does not match the URL's {resource_type}",
            requirement=REQ_TYPES,
        )
    if resource_id is not None and body.get("id") != resource_id:
        raise TimkitError(
            400, IssueType.INVALID, f"the resource's id must equal the URL's id {resource_id!r}"
        )
    return body


def query_pairs(request: web.Request) -> list[tuple[str, str]]:
    """The request's query as ``(name, value)`` pairs, repeated names kept, in order."""
    return [(k, v) for k, v in request.query.items()]


def with_params(query_string: str, extra: Iterable[tuple[str, str]]) -> str:
    """``?query_string&k=v…`` (``""`` when both are empty); ``extra`` is not re-encoded."""
    added = "&".join(f"{k}={v}" for k, v in extra)
    joined = "&".join(p for p in (query_string, added) if p)
    return f"?{joined}" if joined else ""


async def referrers(ctx: ProxyContext, resource_type: str, resource_id: str) -> list[str]:
    """``Type/id`` of resources still referencing ``resource_type/resource_id`` (sorted)."""
    target = f"{resource_type}/{resource_id}"
    sources = rules.REFERRERS.get(resource_type, ())
    found = await asyncio.gather(
        *(upstream.search_all(ctx, source, [(param, target)]) for source, param in sources)
    )
    return sorted(f"{r['resourceType']}/{r['id']}" for batch in found for r in batch if "id" in r)


async def delete_unreferenced(
    ctx: ProxyContext, resource_type: str, resource_id: str, prefix: str
) -> web.Response:
    """Delete the resource unless something references it (409 naming the referrers)."""
    found = await referrers(ctx, resource_type, resource_id)
    if found:
        raise TimkitError(
            409,
            IssueType.CONFLICT,
            f"{resource_type}/{resource_id} is still referenced by {', '.join(found)};"
            " remove those links first",
            extra={"expression": found},
        )
    status, headers, raw = await upstream.fhir(ctx, "DELETE", f"/{resource_type}/{resource_id}")
    return relayed(ctx, status, headers, raw, prefix)


async def current(
    ctx: ProxyContext, resource_type: str, resource_id: str
) -> tuple[dict[str, Any], str]:
    """The stored resource and its ETag; 404 when it does not exist (or is deleted)."""
    found = await upstream.read(ctx, f"{resource_type}/{resource_id}")
    if found is None:
        raise TimkitError(404, IssueType.NOT_FOUND, f"{resource_type}/{resource_id} not found")
    return found


async def send_update(
    ctx: ProxyContext,
    request: web.Request,
    resource: dict[str, Any],
    etag: str,
    prefix: str,
) -> web.Response:
    """PUT ``resource`` to the directory, guarded by the client's ``If-Match`` or ``etag``.

    ``etag`` is the version the rules were checked against, so a concurrent change gives 412
    instead of slipping past the checks. An empty ``etag`` (a create) sends no ``If-Match``
    unless the client gave one.
    """
    if_match = request.headers.get("If-Match") or etag
    status, headers, raw = await upstream.fhir(
        ctx,
        "PUT",
        f"/{resource['resourceType']}/{resource['id']}",
        body=resource,
        headers={"If-Match": if_match} if if_match else None,
    )
    return relayed(ctx, status, headers, raw, prefix)


def forbidden(message: str, requirement: str, expression: list[str] | None = None) -> TimkitError:
    """A 403 (``forbidden``) naming ``requirement`` and the offending elements."""
    extra = {"expression": expression} if expression else None
    return TimkitError(403, IssueType.FORBIDDEN, message, requirement=requirement, extra=extra)


def unprocessable(message: str, requirement: str, expression: list[str]) -> TimkitError:
    """A 422 (``business-rule``) naming ``requirement`` and the offending elements."""
    return TimkitError(
        422,
        IssueType.BUSINESS_RULE,
        message,
        requirement=requirement,
        extra={"expression": expression},
    )
