"""What ``/search`` (and ``/tim-search``) callers may see (visibility rules: :func:`rules.hidden`).

* :class:`HiddenOrganizations`: the Organizations hidden from insured persons, cached;
* :func:`pushdown`: search parameters that keep hidden matches from coming at all;
* :func:`apply_visibility`: the directory's answer as the caller may see it, every Bundle
  entry judged on its own (502 when the answer is not what was asked for);
* :func:`read_only_capability`: the directory's CapabilityStatement, made read-only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from timkit.core.errors import IssueType, TimkitError, UpstreamError
from timkit.core.fhir import DIRECTORY_TYPES
from timkit.fhirproxy import upstream
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.handlers import rules
from timkit.fhirproxy.handlers.fhir_checks import filter_bundle

log = logging.getLogger(__name__)


HIDDEN_TTL = 60.0


READ_ONLY_INTERACTIONS = ("read", "search-type")


Decorate = Callable[[dict[str, Any], dict[str, Any]], None]
"""Changes one shown resource in place, given the caller's token claims (PASSporT mode)."""


class HiddenOrganizations:
    """``Organization/<id>`` of the Organizations hidden from insured persons, cached.

    :meth:`get` asks the directory when the cached answer is older than ``ttl`` seconds; one
    request at a time asks, the others wait for its answer. A directory failure is raised
    (502), never answered with an empty set.
    """

    def __init__(self, ttl: float = HIDDEN_TTL) -> None:
        self.ttl = ttl
        self._references: frozenset[str] = frozenset()
        self._expires = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, ctx: FhirProxyContext) -> frozenset[str]:
        """The current set (at most ``ttl`` seconds old)."""
        if time.monotonic() < self._expires:
            return self._references
        async with self._lock:
            if time.monotonic() >= self._expires:
                found = await upstream.search_every(
                    ctx, "Organization", [("organizationVisibility", rules.HIDE_INSURED)]
                )
                self._references = frozenset(
                    f"Organization/{r['id']}" for r in found if isinstance(r.get("id"), str)
                )
                self._expires = time.monotonic() + self.ttl
        return self._references


def lookup_insured(ctx: FhirProxyContext, domain: str) -> bool:
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
    if resource_type == "HealthcareService" and insured:
        return [("organization.organizationVisibility:not", rules.HIDE_INSURED)]
    return []


def not_found(name: str, resource_id: str) -> TimkitError:
    return TimkitError(404, IssueType.NOT_FOUND, f"{name}/{resource_id} not found")


def apply_visibility(
    raw: bytes,
    claims: dict[str, Any],
    insured: bool,
    hidden_organizations: frozenset[str],
    decorate: Decorate | None,
    name: str,
    resource_id: str | None,
) -> bytes:
    """The answer as the caller may see it, or an error when it is not what was asked for.

    A read must be the resource asked for (type and id), else 502; a search must be a
    ``searchset`` Bundle, else 502. In a Bundle every entry is judged on its own: an entry
    is kept only when it holds a resource of one of the six directory types that
    :func:`rules.hidden` does not hide. Entries without a resource (history entries of
    deleted versions), ``OperationOutcome`` entries, nested Bundles and any other type are
    dropped.
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        raise _unexpected("an answer that is not a JSON object")

    def is_hidden(resource: dict[str, Any]) -> bool:
        return rules.hidden(resource, insured=insured, hidden_organizations=hidden_organizations)

    if resource_id is not None:
        if document.get("resourceType") != name or document.get("id") != resource_id:
            raise _unexpected(f"a {document.get('resourceType')!r} for a read of {name}")
        if is_hidden(document):
            raise not_found(name, resource_id)
        if decorate is not None:
            decorate(claims, document)
        return orjson.dumps(document)

    if document.get("resourceType") != "Bundle" or document.get("type") != "searchset":
        raise _unexpected(f"a {document.get('resourceType')!r} for a search of {name}")

    def keep(resource: dict[str, Any]) -> bool:
        if resource.get("resourceType") not in DIRECTORY_TYPES or is_hidden(resource):
            return False
        if decorate is not None:
            decorate(claims, resource)
        return True

    filter_bundle(document, keep, drop_without_resource=True)
    return orjson.dumps(document)


def _unexpected(what: str) -> UpstreamError:
    log.warning("FHIR-Directory sent %s on /search", what)
    return UpstreamError("the FHIR-Directory's answer was not the one asked for")


_WRITE_CAPABILITIES = (
    "versioning",
    "readHistory",
    "updateCreate",
    "conditionalCreate",
    "conditionalRead",
    "conditionalUpdate",
    "conditionalDelete",
    "referencePolicy",
)


def read_only_capability(statement: dict[str, Any], url: str) -> dict[str, Any]:
    """``statement`` (the directory's) as served at ``url``: read-only, directory types only.

    Every ``rest`` entry loses its system interactions (``transaction``, ``batch``, history)
    and operations. Every resource keeps its profile and search capabilities (parameters,
    includes) and gets exactly :data:`READ_ONLY_INTERACTIONS`; what only matters for writes
    or history (versioning, conditional writes) is removed. Types other than the six
    directory types are removed. ``implementation.url`` becomes ``url``. The input is not
    changed.
    """
    rests = []
    for rest in statement.get("rest", []):
        if not isinstance(rest, dict):
            continue
        resources = []
        for resource in rest.get("resource", []):
            if not isinstance(resource, dict) or resource.get("type") not in DIRECTORY_TYPES:
                continue
            kept = {k: v for k, v in resource.items() if k not in _WRITE_CAPABILITIES}
            kept["interaction"] = [{"code": code} for code in READ_ONLY_INTERACTIONS]
            kept.pop("operation", None)
            resources.append(kept)
        read_only = {k: v for k, v in rest.items() if k not in ("interaction", "operation")}
        read_only["resource"] = resources
        rests.append(read_only)
    implementation = {**statement.get("implementation", {}), "url": url}
    return {**statement, "implementation": implementation, "rest": rests}
