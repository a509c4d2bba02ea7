"""Searchset Bundles of the VZD become chat partners (pure parsing)."""

from __future__ import annotations

from typing import Any

from timkit.client.directory_search import DirectoryEndpoint, hits_of
from timkit.core.fhir import CONNECTION_TYPE, TELEMATIK_ID

ENDPOINT_VISIBILITY = "https://gematik.de/fhir/directory/StructureDefinition/EndpointVisibility"


def endpoint(
    id_: str, address: str, *, status: str = "active", code: str = "tim", **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Endpoint",
        "id": id_,
        "status": status,
        "connectionType": {"system": CONNECTION_TYPE, "code": code},
        "address": address,
        **extra,
    }


def entry(resource: dict[str, Any], mode: str = "include") -> dict[str, Any]:
    return {"resource": resource, "search": {"mode": mode}}


ORGANIZATION = {
    "resourceType": "Organization",
    "id": "org-1",
    "identifier": [{"system": TELEMATIK_ID, "value": "1-ORG"}],
    "name": "Klinikum Nord",
    "address": [{"city": "Hamburg"}],
}


def test_a_healthcare_service_names_service_organisation_and_endpoint_together() -> None:
    """api-vzd#167: HealthcareService, organisation and endpoint name are shown together."""
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            entry(
                {
                    "resourceType": "HealthcareService",
                    "id": "hs-1",
                    "name": "Kardiologie",
                    "providedBy": {"reference": "Organization/org-1"},
                    "endpoint": [
                        {"reference": "Endpoint/ep-1"},
                        {"reference": "Endpoint/ep-off"},
                        {"reference": "Endpoint/ep-kim"},
                        {"reference": "Endpoint/ep-missing"},
                    ],
                },
                "match",
            ),
            entry(ORGANIZATION),
            entry(
                endpoint(
                    "ep-1",
                    "matrix:u/kardio:klinikum-nord.tim.test",
                    name="Kardiologie Empfang",
                    extension=[
                        {
                            "url": ENDPOINT_VISIBILITY,
                            "valueCoding": {"code": "hide-versicherte"},
                        }
                    ],
                )
            ),
            entry(endpoint("ep-off", "matrix:u/alt:klinikum-nord.tim.test", status="off")),
            entry(endpoint("ep-kim", "matrix:u/kim:klinikum-nord.tim.test", code="kim")),
        ],
    }
    [hit] = hits_of(bundle, "organisation")
    assert hit.kind == "organisation"
    assert hit.reference == "HealthcareService/hs-1"
    assert (hit.name, hit.organisation, hit.healthcare_service) == (
        "Kardiologie",
        "Klinikum Nord",
        "Kardiologie",
    )
    assert hit.telematik_id == "1-ORG"
    assert hit.city == "Hamburg"
    assert hit.endpoints == (
        DirectoryEndpoint("@kardio:klinikum-nord.tim.test", "Kardiologie Empfang", True),
    )
    assert hit.label() == "Kardiologie - Klinikum Nord - Kardiologie Empfang (Hamburg)"


def test_a_practitioner_role_names_the_practitioner_and_employer() -> None:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            entry(
                {
                    "resourceType": "PractitionerRole",
                    "id": "role-1",
                    "practitioner": {"reference": "Practitioner/p-1"},
                    "organization": {"reference": "Organization/org-1"},
                    "healthcareService": [{"reference": "HealthcareService/hs-1"}],
                    "location": [{"reference": "Location/loc-1"}],
                    "endpoint": [{"reference": "Endpoint/ep-2"}],
                },
                "match",
            ),
            entry(
                {
                    "resourceType": "Practitioner",
                    "id": "p-1",
                    "identifier": [{"system": TELEMATIK_ID, "value": "1-1-ARZT"}],
                    "name": [{"prefix": ["Dr."], "given": ["Clara"], "family": "Sonnenschein"}],
                }
            ),
            entry(ORGANIZATION),
            entry({"resourceType": "HealthcareService", "id": "hs-1", "name": "Kardiologie"}),
            entry({"resourceType": "Location", "id": "loc-1", "address": {"city": "Bonn"}}),
            entry(endpoint("ep-2", "matrix:u/clara:klinikum-nord.tim.test")),
        ],
    }
    [hit] = hits_of(bundle, "practitioner")
    assert (hit.kind, hit.name, hit.telematik_id) == (
        "practitioner",
        "Dr. Clara Sonnenschein",
        "1-1-ARZT",
    )
    assert (hit.organisation, hit.healthcare_service, hit.city) == (
        "Klinikum Nord",
        "Kardiologie",
        "Bonn",
    )
    assert hit.mxids == ("@clara:klinikum-nord.tim.test",)
    assert hit.label() == "Dr. Clara Sonnenschein - Kardiologie - Klinikum Nord (Bonn)"
    # included PractitionerRoles are no matches; HealthcareServices are not practitioners
    bundle["entry"][0]["search"]["mode"] = "include"
    assert hits_of(bundle, "practitioner") == []


def test_matches_without_an_active_ti_m_endpoint_and_malformed_entries_are_left_out() -> None:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            entry({"resourceType": "HealthcareService", "id": "hs-2", "name": "X"}, "match"),
            entry(
                {
                    "resourceType": "HealthcareService",
                    "id": "hs-3",
                    "endpoint": [{"reference": "Endpoint/ep-3"}],
                },
                "match",
            ),
            entry(endpoint("ep-3", "https://not-a-matrix-id.example")),
            {"resource": "junk"},
            {"search": {"mode": "match"}},
            "junk",
        ],
    }
    assert hits_of(bundle, "organisation") == []
    assert hits_of({"entry": "junk"}, "organisation") == []
