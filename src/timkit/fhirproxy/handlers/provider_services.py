"""The logic of ``/tim-provider-services`` (I_VZD_TIM_Provider_Services 1.4.0, AF_10048):
the state of organisations in the FHIR-Directory, MXID normalisation, where an MXID is
(whereIs) and the ownership of registered domains. The routes, their parsing and the rules
they enforce are described in :mod:`timkit.fhirproxy.api.provider_services_routes`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from enum import Enum

from timkit.core.errors import IssueType, TimkitError
from timkit.core.fhir import TELEMATIK_ID
from timkit.fhirproxy import upstream
from timkit.fhirproxy.context import FhirProxyContext
from timkit.fhirproxy.handlers.signed_list import AF_DOMAINS, Domain

_MXID = re.compile(
    r"^(?:matrix:u/|matrix:user/|@)(?P<local>[\x21-\x39\x3b-\x7e]+)"
    r":(?P<server>(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?)$"
)


_LOOKUP_CHUNK = 40


class OrgState(Enum):
    """What the FHIR-Directory knows about the Organization of a TelematikID."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    MISSING = "missing"


def bad_request(message: str, attribute: str | None = None) -> TimkitError:
    errors = [{"attributeName": attribute, "attributeError": message}] if attribute else []
    return TimkitError(
        400, IssueType.INVALID, message, requirement=AF_DOMAINS, extra={"errors": errors}
    )


def escape_search_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("$", "\\$")


async def organization_states(
    ctx: FhirProxyContext, telematik_ids: Iterable[str]
) -> dict[str, OrgState]:
    """Per TelematikID, the state of its Organization(s) in the FHIR-Directory."""
    wanted = sorted(set(telematik_ids))
    states = dict.fromkeys(wanted, OrgState.MISSING)
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        identifiers = ",".join(f"{TELEMATIK_ID}|{escape_search_value(t)}" for t in chunk)
        bundle = await upstream.fhir_json(
            ctx, "/Organization", [("identifier", identifiers), ("_count", "1000")]
        )
        for entry in bundle.get("entry", []):
            resource = entry.get("resource", {})
            active = resource.get("active") is not False
            for identifier in resource.get("identifier", []):
                tid = identifier.get("value")
                if identifier.get("system") != TELEMATIK_ID or tid not in states:
                    continue
                if active:
                    states[tid] = OrgState.ACTIVE
                elif states[tid] is OrgState.MISSING:
                    states[tid] = OrgState.INACTIVE
    return states


async def require_active_organization(ctx: FhirProxyContext, telematik_id: str) -> None:
    state = (await organization_states(ctx, [telematik_id]))[telematik_id]
    if state is OrgState.INACTIVE:
        raise bad_request(
            "organization which belongs to the telematikID is not active", "telematikID"
        )
    if state is OrgState.MISSING:
        raise bad_request(
            f"no Organization with telematikID {telematik_id} in the FHIR-Directory", "telematikID"
        )


def normalise_mxid(value: str) -> str:
    """``value`` (``matrix:u/…``, ``matrix:user/…`` or ``@…``) as ``matrix:u/local:server``.

    Raises:
        TimkitError: 400 for anything else.
    """
    match = _MXID.match(value)
    if match is None or len(value) > 260:
        raise bad_request(
            "mxid must be a Matrix user ID in URL form, matrix:u/localpart:domain", "mxid"
        )
    return f"matrix:u/{match['local']}:{match['server']}"


async def where_is(ctx: FhirProxyContext, mxid: str) -> str:
    """Where in the directory the Endpoint of ``mxid`` (normalised) is referenced from:
    ``org``, ``pract``, ``orgPract`` or ``none``; 404 when no Endpoint has it."""
    bundle = await upstream.fhir_json(
        ctx,
        "/Endpoint",
        [
            ("address", escape_search_value(mxid)),
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
    return "orgPract" if org and pract else "org" if org else "pract" if pract else "none"


async def own_domain(ctx: FhirProxyContext, name: str, owner: str) -> Domain:
    """The registered domain ``name`` of provider ``owner``; 404 when unknown, 403 when it
    belongs to another provider."""
    existing = await asyncio.get_running_loop().run_in_executor(ctx.executor, ctx.domains.get, name)
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
