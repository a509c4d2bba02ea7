"""An OpenAPI 3.0 description of the FHIR-Proxy's ``/search`` (gematik publishes none).

Derived from the CapabilityStatement ``/search/metadata`` serves (the resource types, their
search parameters, ``_include``/``_revinclude`` values; ``test_search.py`` checks the two
have not drifted apart) and from ``FHIR_VZD_HOWTO_Search`` (api-vzd): ``GET
/search/{type}`` answers a ``searchset`` Bundle, ``GET /search/{type}/{id}`` the resource,
every error an ``OperationOutcome``, all as ``application/fhir+json``; a search-accesstoken
is required (ML-123485).
"""

from __future__ import annotations

from typing import Any

SEARCH_PARAMETERS: dict[str, list[str]] = {
    "Organization": [
        "_profile", "_tag", "active", "address", "address-city", "address-country",
        "address-postalcode", "address-state", "address-use", "alias", "endpoint",
        "identifier", "name", "ncpeh-country", "organizationVisibility", "partof", "phonetic",
        "type", "type-display", "_id", "_lastUpdated", "_text", "_content",
    ],
    "Practitioner": [
        "_profile", "_tag", "active", "address", "address-city", "address-country",
        "address-postalcode", "address-state", "address-use", "communication", "email",
        "family", "gender", "given", "identifier", "name", "phone", "phonetic",
        "qualification", "telecom", "_id", "_lastUpdated", "_text", "_content",
    ],
    "PractitionerRole": [
        "_profile", "_tag", "active", "date", "email", "endpoint", "holder-id", "identifier",
        "location", "organization", "owner-telematik-id", "phone", "practitioner", "role",
        "service", "specialty", "telecom", "_id", "_lastUpdated", "_text", "_content",
    ],
    "HealthcareService": [
        "_profile", "_tag", "active", "characteristic", "coverage-area",
        "coverageAreaPostalCode", "endpoint", "holder-id", "identifier", "location", "name",
        "organization", "owner-telematik-id", "program", "service-category", "service-type",
        "specialty", "_id", "_lastUpdated", "_text", "_content",
    ],
    "Location": [
        "_profile", "_tag", "address", "address-city", "address-country",
        "address-postalcode", "address-state", "address-use", "endpoint", "identifier", "name",
        "near", "operational-status", "organization", "partof", "status", "type", "_id",
        "_lastUpdated", "_text", "_content",
    ],
    "Endpoint": [
        "_profile", "_tag", "address", "connection-type", "endpointVisibility", "identifier",
        "name", "organization", "owner-telematik-id", "payload-type", "status", "_id",
        "_lastUpdated", "_text", "_content",
    ],
}  # fmt: skip
"""Per resource type, the search parameters of the CapabilityStatement."""

INCLUDES: dict[str, list[str]] = {
    "Organization": ["*", "Organization:endpoint", "Organization:partof"],
    "Practitioner": ["*"],
    "PractitionerRole": [
        "*", "PractitionerRole:endpoint", "PractitionerRole:location",
        "PractitionerRole:organization", "PractitionerRole:practitioner",
        "PractitionerRole:service",
    ],
    "HealthcareService": [
        "*", "HealthcareService:coverage-area", "HealthcareService:endpoint",
        "HealthcareService:location", "HealthcareService:organization",
    ],
    "Location": ["*", "Location:endpoint", "Location:organization", "Location:partof"],
    "Endpoint": ["*", "Endpoint:organization"],
}  # fmt: skip
"""Per resource type, its ``searchInclude`` values."""

REV_INCLUDES: dict[str, list[str]] = {
    "Organization": [
        "Endpoint:organization", "HealthcareService:organization", "Location:organization",
        "Organization:partof", "PractitionerRole:organization",
    ],
    "Practitioner": ["PractitionerRole:practitioner"],
    "PractitionerRole": [],
    "HealthcareService": ["PractitionerRole:service"],
    "Location": [
        "HealthcareService:coverage-area", "HealthcareService:location", "Location:partof",
        "PractitionerRole:location",
    ],
    "Endpoint": [
        "HealthcareService:endpoint", "Location:endpoint", "Organization:endpoint",
        "PractitionerRole:endpoint",
    ],
}  # fmt: skip
"""Per resource type, its ``searchRevInclude`` values."""

FHIR_JSON = "application/fhir+json"

_OUTCOME = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string", "enum": ["fatal", "error", "warning"]},
                    "code": {"type": "string", "minLength": 1},
                    "diagnostics": {"type": "string"},
                },
            },
        },
    },
}

_ERRORS = {
    str(status): {"description": text, "content": {FHIR_JSON: {"schema": _OUTCOME}}}
    for status, text in [
        (400, "Bad Request"),
        (401, "Unauthorized (no or an invalid search-accesstoken)"),
        (403, "Forbidden (a token of another kind)"),
        (404, "Not Found (unknown type, unknown or hidden resource)"),
    ]
}


def _resource(types: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resourceType", "id"],
        "properties": {
            "resourceType": {"type": "string", "enum": types},
            "id": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"},
        },
    }


def _bundle(types: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resourceType", "type"],
        "properties": {
            "resourceType": {"type": "string", "enum": ["Bundle"]},
            "type": {"type": "string", "enum": ["searchset"]},
            "total": {"type": "integer", "minimum": 0},
            "entry": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["resource"],
                    "properties": {"resource": _resource(types)},
                },
            },
        },
    }


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _search(resource_type: str) -> dict[str, Any]:
    parameters = [_query(p, {"type": "string"}) for p in SEARCH_PARAMETERS[resource_type]]
    parameters.append(_query("_count", {"type": "integer", "minimum": 0, "maximum": 1000}))
    parameters.append(_query("_include", {"type": "string", "enum": INCLUDES[resource_type]}))
    if REV_INCLUDES[resource_type]:
        parameters.append(
            _query("_revinclude", {"type": "string", "enum": REV_INCLUDES[resource_type]})
        )
    parameters.append(_query("_summary", {"type": "string", "enum": ["count", "false"]}))
    return {
        "operationId": f"search{resource_type}",
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "searchset Bundle",
                "content": {FHIR_JSON: {"schema": _bundle(sorted(SEARCH_PARAMETERS))}},
            },
            **_ERRORS,
        },
    }


def search_openapi() -> dict[str, Any]:
    """The OpenAPI document (paths relative to the FHIR-Proxy's base URL)."""
    types = sorted(SEARCH_PARAMETERS)
    paths: dict[str, Any] = {
        f"/search/{resource_type}": {"get": _search(resource_type)} for resource_type in types
    }
    paths["/search/{type}/{id}"] = {
        "get": {
            "operationId": "read",
            "parameters": [
                {"name": "type", "in": "path", "required": True,
                 "schema": {"type": "string", "enum": types}},
                {"name": "id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"}},
            ],
            "responses": {
                "200": {
                    "description": "the resource",
                    "content": {FHIR_JSON: {"schema": _resource(types)}},
                },
                **_ERRORS,
            },
        }
    }  # fmt: skip
    paths["/search/metadata"] = {
        "get": {
            "operationId": "capabilities",
            "responses": {
                "200": {
                    "description": "CapabilityStatement",
                    "content": {
                        FHIR_JSON: {
                            "schema": {
                                "type": "object",
                                "required": ["resourceType"],
                                "properties": {
                                    "resourceType": {
                                        "type": "string",
                                        "enum": ["CapabilityStatement"],
                                    }
                                },
                            }
                        }
                    },
                },
                **_ERRORS,
            },
        }
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "VZD-FHIR-Directory /search (timkit's description)", "version": "1"},
        "paths": paths,
        "components": {"securitySchemes": {"searchToken": {"type": "http", "scheme": "bearer"}}},
        "security": [{"searchToken": []}],
    }
