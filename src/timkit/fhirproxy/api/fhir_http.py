"""HTTP helpers shared by the FHIR faces of the FHIR-Proxy (``/search``, ``/owner``, provider
FHIR): request parsing and relayed answers.

Contracts:

* :func:`request_target` is the request target as the FHIR-Directory will read it
  (:func:`timkit.core.request_target.parse_target`: split into segments before decoding);
  :mod:`timkit.fhirproxy.api.app` refuses every target it cannot parse (400) before
  any handler runs;
* :func:`fhir_path` is the only way a handler reads ``{type}`` and ``{id}`` from the URL,
  matched on those segments: anything but the six directory types is a 400 naming
  ML-123880; an id that is not a FHIR id (``[A-Za-z0-9-.]{1,64}``) is a 400. So the ids
  relayed need no encoding, and no ``/``, ``?``, ``_history`` or operation can ride in one;
* :func:`read_body` is the only way a handler reads a resource from the request: a JSON object
  whose ``resourceType`` (and ``id``, for an update) match the URL, else 400;
* :func:`relayed` turns the directory's answer into the client's: the body's links and the
  ``Location`` header are rebased onto the proxy path (:func:`upstream.rebase`), and only
  :data:`upstream.RELAYED_HEADERS` pass. A 5xx of the directory, or an error whose body is
  not an ``OperationOutcome``, becomes a generic OperationOutcome of the FHIR-Proxy (the
  directory's answer is logged, never relayed);
* :func:`delete_unreferenced` deletes only what no other entry references (409 otherwise;
  :func:`timkit.fhirproxy.handlers.fhir_checks.referrers`).

Errors are raised as :class:`TimkitError`; :mod:`timkit.fhirproxy.api.app` renders them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from timkit.core.errors import IssueType, TimkitError, UpstreamError
from timkit.core.fhir import DIRECTORY_TYPES, parse_resource_json
from timkit.core.request_target import RequestTarget, UnparsableRequest, parse_target
from timkit.fhirproxy import upstream
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.handlers.fhir_checks import referrers

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
REQ_TYPES = "ML-123880"
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
"""FHIR R4's ``id`` syntax (http://hl7.org/fhir/R4/datatypes.html#id)."""
_TARGET_KEY = web.RequestKey("fhirproxy.request_target", RequestTarget)


def request_target(request: web.Request) -> RequestTarget:
    """The request's target split as the directory splits it (parsed once per request).

    Raises:
        TimkitError: 400 naming why the target cannot be read unambiguously.
    """
    found = request.get(_TARGET_KEY)
    if isinstance(found, RequestTarget):
        return found
    try:
        target = parse_target(request.raw_path)
    except UnparsableRequest as e:
        raise TimkitError(400, IssueType.INVALID, f"unparsable request target: {e}") from None
    request[_TARGET_KEY] = target
    return target


def fhir_path(request: web.Request, prefix: str) -> tuple[str, str | None]:
    """``(type, id)`` of ``<prefix>/{type}[/{id}]`` (id None for a type-level request).

    Matched on :func:`request_target`'s segments, so an encoded ``/`` never splits or joins
    segments.

    Raises:
        TimkitError: 404 when the path has another shape; 400 for a type that is not a
            directory type (ML-123880) or an id that is not a FHIR id.
    """
    target = request_target(request)
    found = target.match(prefix + "/{type}/{id}") or target.match(prefix + "/{type}")
    if found is None:
        raise TimkitError(
            404, IssueType.NOT_FOUND, f"no FHIR interaction at this path under {prefix}"
        )
    name = checked_type(found["type"])
    resource_id = found.get("id")
    if resource_id is not None and not FHIR_ID.fullmatch(resource_id):
        shown = resource_id[:70].encode("unicode_escape").decode("ascii")
        raise TimkitError(
            400,
            IssueType.INVALID,
            f"{shown!r} is not a FHIR id ([A-Za-z0-9-.]{{1,64}}); {prefix} serves"
            f" {name}/<id> reads only (no _history, vread or operations)",
            extra={"expression": [f"{name}.id"]},
        )
    return name, resource_id


def resource_type(request: web.Request, prefix: str) -> str:
    """The URL's ``{type}`` (see :func:`fhir_path`)."""
    return fhir_path(request, prefix)[0]


def resource_id(request: web.Request, prefix: str) -> str:
    """The URL's ``{id}`` (see :func:`fhir_path`); 404 for a type-level path."""
    name, found = fhir_path(request, prefix)
    if found is None:
        raise TimkitError(404, IssueType.NOT_FOUND, f"{prefix}/{name} needs an id here")
    return found


def checked_type(name: str) -> str:
    """``name``; 400 (ML-123880) unless it is one of the six directory types."""
    if name not in DIRECTORY_TYPES:
        raise TimkitError(
            400,
            IssueType.NOT_SUPPORTED,
            f"{name!r} is not a directory resource type (one of "
            f"{', '.join(sorted(DIRECTORY_TYPES))})",
            requirement=REQ_TYPES,
        )
    return name


def fhir_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    """``body`` (already serialised) as ``application/fhir+json``."""
    return web.Response(body=body, status=status, content_type=FHIR_JSON, headers=headers)


def relayed(
    ctx: FhirProxyContext, status: int, headers: dict[str, str], raw: bytes, prefix: str
) -> web.Response:
    """The directory's answer for the client: links and ``Location`` rebased onto ``prefix``.

    Raises:
        UpstreamError: the directory answered 5xx (502, generic; its answer is logged).
        TimkitError: the directory answered 4xx without an OperationOutcome (same status,
            generic message).
    """
    checked_answer(status, raw)
    if status == 204 or not raw:
        return web.Response(status=status, headers=upstream.rebase_headers(ctx, headers, prefix))
    return fhir_response(
        status, upstream.rebase(ctx, raw, prefix), upstream.rebase_headers(ctx, headers, prefix)
    )


def checked_answer(status: int, raw: bytes) -> None:
    """Refuse to pass on a directory failure as it came (see :func:`relayed`)."""
    if status >= 500:
        log.warning("FHIR-Directory answered %d: %r", status, raw[:500])
        raise UpstreamError("the FHIR-Proxy could not get an answer from the FHIR-Directory")
    if status >= 400 and not _is_operation_outcome(raw):
        log.warning("FHIR-Directory answered %d without an OperationOutcome: %r", status, raw[:500])
        raise TimkitError(
            status,
            IssueType.NOT_FOUND if status == 404 else IssueType.PROCESSING,
            f"the FHIR-Directory refused the request ({status})",
        )


def _is_operation_outcome(raw: bytes) -> bool:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, dict) and document.get("resourceType") == "OperationOutcome"


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


async def delete_unreferenced(
    ctx: FhirProxyContext, resource_type: str, resource_id: str, prefix: str
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


async def send_update(
    ctx: FhirProxyContext,
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
