"""Checks shared by the FHIR faces' handlers (``/search``, ``/owner``, provider FHIR).

Contracts:

* :func:`filter_bundle` drops the entries a predicate refuses and keeps ``total`` right for
  the dropped ``match`` entries of that page;
* :func:`referrers` names what still references a resource, :func:`current` reads the
  stored version (404 when there is none);
* :func:`first_foreign_link` names the first link a write adds to a resource the writer does
  not own;
* :func:`check_mxids` refuses an MXID the writer may not publish (ML-123626, ML-123611);
* :func:`forbidden` and :func:`unprocessable` are the 403 and 422 the rules raise.

Errors are raised as :class:`TimkitError`; :mod:`timkit.fhirproxy.api.app` renders them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Set
from typing import Any

from timkit.core.errors import IssueType, TimkitError
from timkit.fhirproxy import upstream
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.handlers import rules


def bundle_entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The Bundle's entries that are objects (anything else is skipped)."""
    entries = bundle.get("entry")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def filter_bundle(
    bundle: dict[str, Any],
    keep: Callable[[dict[str, Any]], bool],
    *,
    drop_without_resource: bool = False,
) -> None:
    """Drop entries whose resource ``keep`` refuses; correct ``total`` for dropped matches.

    ``keep`` may change the resource it is given (it sees each one once). Entries without a
    resource object are kept, unless ``drop_without_resource``; entries that are not objects
    are always dropped. ``bundle`` is changed in place.
    """
    kept, dropped = [], 0
    for entry in bundle_entries(bundle):
        resource = entry.get("resource")
        refused = not keep(resource) if isinstance(resource, dict) else drop_without_resource
        if refused:
            search = entry.get("search")
            mode = search.get("mode", "match") if isinstance(search, dict) else "match"
            if mode == "match":
                dropped += 1
            continue
        kept.append(entry)
    if "entry" in bundle:
        bundle["entry"] = kept
    if dropped and isinstance(bundle.get("total"), int):
        bundle["total"] = max(0, bundle["total"] - dropped)


async def referrers(ctx: FhirProxyContext, resource_type: str, resource_id: str) -> list[str]:
    """``Type/id`` of resources still referencing ``resource_type/resource_id`` (sorted)."""
    target = f"{resource_type}/{resource_id}"
    sources = rules.REFERRERS.get(resource_type, ())
    found = await asyncio.gather(
        *(upstream.search_all(ctx, source, [(param, target)]) for source, param in sources)
    )
    return sorted(f"{r['resourceType']}/{r['id']}" for batch in found for r in batch if "id" in r)


async def current(
    ctx: FhirProxyContext, resource_type: str, resource_id: str
) -> tuple[dict[str, Any], str]:
    """The stored resource and its ETag; 404 when it does not exist (or is deleted)."""
    found = await upstream.read(ctx, f"{resource_type}/{resource_id}")
    if found is None:
        raise TimkitError(404, IssueType.NOT_FOUND, f"{resource_type}/{resource_id} not found")
    return found


REQ_ORGANIZATION_MXIDS = "ML-123626"


REQ_PRACTITIONER_MXIDS = "ML-123611"


async def check_mxids(
    ctx: FhirProxyContext,
    new: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    telematik_ids: set[str] | None,
) -> None:
    """Refuse an MXID the writer may not publish (directory ownership of MXIDs).

    Every MXID ``new`` publishes (:func:`rules.published_mxids`) that ``current`` did not
    already publish must be well-formed (422) and on an allowed domain (403):

    * ``telematik_ids`` given (an organisation's entry): a domain registered in the
      federation list for one of those TelematikIDs (ML-123626: an Org-Admin changes only
      their own organisation's entries, and a TI-M address is a user of its own TI-M
      domains);
    * ``telematik_ids`` None (a practitioner's entry, HBA): any domain of the federation
      list (ML-123611: a practitioner publishes their own MXID, which lives on a TI-M
      domain).
    """
    requirement = REQ_ORGANIZATION_MXIDS if telematik_ids is not None else REQ_PRACTITIONER_MXIDS
    kept = {value for _, value in rules.published_mxids(current)} if current else set()
    wanted: list[tuple[str, str, str]] = []
    for element, value in rules.published_mxids(new):
        if value in kept:
            continue
        try:
            server = rules.mxid_server(value)
        except rules.InvalidMxid as e:
            raise unprocessable(str(e), requirement, [element]) from None
        if server is None:
            raise unprocessable(
                f"{element} of a TI-M Endpoint must be an MXID (matrix:u/<localpart>:<domain>)",
                requirement,
                [element],
            )
        wanted.append((element, value, server))
    if not wanted:
        return
    loop = asyncio.get_running_loop()
    if telematik_ids is not None:
        ids = frozenset(telematik_ids)
        allowed = await loop.run_in_executor(
            ctx.executor,
            lambda: {d for t in ids for d in ctx.domains.names_of_telematik_id(t)},
        )
        for element, value, server in wanted:
            if server not in allowed:
                raise forbidden(
                    f"{element} {value[:200]!r} is on {server}, which the federation list does"
                    f" not register for TelematikID {', '.join(sorted(ids)) or '(none)'}; an"
                    " organisation may publish only MXIDs of its own TI-M domains"
                    f" ({', '.join(sorted(allowed)) or 'none registered'})",
                    requirement,
                    [element],
                )
        return
    for element, value, server in wanted:
        if not await loop.run_in_executor(ctx.executor, ctx.domains.contains, server):
            raise forbidden(
                f"{element} {value[:200]!r} is on {server}, which is not a domain of the"
                " federation list; a practitioner may publish only their own MXID on a TI-M"
                " domain",
                requirement,
                [element],
            )


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


async def first_foreign_link(
    owns: Callable[[str], Awaitable[bool]],
    new: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    skip: Set[str] = frozenset(),
) -> tuple[str, str] | None:
    """The first ``(element, reference)`` link of ``new`` that ``current`` did not have
    already, whose element is not in ``skip``, and whose target ``owns`` refuses; else None.

    Links are tried in the order :func:`rules.linked` gives them; links kept from
    ``current`` are not looked up again.
    """
    old_links = set(rules.linked(current)) if current is not None else set()
    for element, reference in rules.linked(new):
        if element in skip or (element, reference) in old_links:
            continue
        if not await owns(reference):
            return element, reference
    return None
