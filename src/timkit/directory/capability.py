"""The directory's ``CapabilityStatement``, derived from what is actually implemented.

Search parameters come from the same registry the indexer and query parser use, so the
statement cannot claim a parameter the server does not index.
"""

from __future__ import annotations

from typing import Any

from timkit import __version__
from timkit.core.fhir import PROFILE, RESOURCE_TYPES
from timkit.directory.searchparams import REGISTRY

_COMMON = (
    ("_id", "token", "http://hl7.org/fhir/SearchParameter/Resource-id"),
    ("_lastUpdated", "date", "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"),
    ("_text", "string", "http://hl7.org/fhir/SearchParameter/DomainResource-text"),
    ("_content", "string", "http://hl7.org/fhir/SearchParameter/Resource-content"),
)
_INTERACTIONS = ("read", "vread", "update", "delete", "history-instance", "create", "search-type")


def _resource(resource_type: str) -> dict[str, Any]:
    params = REGISTRY[resource_type]
    references = sorted(c for c, p in params.items() if p.type == "reference")
    includes = [f"{resource_type}:{c}" for c in references]
    revincludes = sorted(
        f"{t}:{c}"
        for t in RESOURCE_TYPES
        for c, p in REGISTRY[t].items()
        if p.type == "reference" and resource_type in p.targets
    )
    search_params = [
        {"name": code, "definition": p.url, "type": p.type}
        for code, p in sorted(params.items())
        if code not in ("_id", "_lastUpdated")
    ]
    search_params += [{"name": n, "type": t, "definition": d} for n, t, d in _COMMON]
    return {
        "type": resource_type,
        "profile": PROFILE.format(resource_type),
        "interaction": [{"code": code} for code in _INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchInclude": ["*", *includes],
        "searchRevInclude": revincludes,
        "searchParam": search_params,
    }


def capability_statement(base_url: str) -> dict[str, Any]:
    """The CapabilityStatement for a server reachable at ``base_url``."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-24",
        "kind": "instance",
        "software": {"name": "timkit FHIR-Directory", "version": __version__},
        "implementation": {"description": "timkit VZD-FHIR-Directory", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "resource": [_resource(t) for t in RESOURCE_TYPES],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
