"""The FHIR-Directory as ``timkit up`` runs it: on loopback, seeded with the demo data."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.federation import Federation


def _directory(federation: Federation) -> dict[str, Any]:
    (component,) = [c for c in federation.status()["components"] if c["kind"] == "fhir-directory"]
    return component


def test_directory_runs_on_loopback_and_is_healthy(federation: Federation) -> None:
    directory = _directory(federation)
    assert directory["healthy"] is True
    assert directory["url"].startswith("http://127.0.0.1:")
    metadata = httpx.get(f"{directory['url']}/metadata").json()
    assert metadata["fhirVersion"] == "4.0.1"


def test_demo_organisations_are_found_by_their_matrix_endpoint(federation: Federation) -> None:
    url = _directory(federation)["url"]
    for service in federation.status()["services"]:
        domain = service["domain"]
        bundle = httpx.get(
            f"{url}/Endpoint",
            params={
                "address": f"matrix:u/empfang:{domain}",
                "_revinclude": "HealthcareService:endpoint",
            },
        ).json()
        kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
        assert kinds == ["Endpoint", "HealthcareService"]


def test_demo_data_has_synthetic_practices_and_practitioners(federation: Federation) -> None:
    url = _directory(federation)["url"]
    roles = httpx.get(
        f"{url}/PractitionerRole",
        params={"practitioner.active": "true", "_summary": "count"},
    ).json()
    assert roles["total"] > 0
    services = httpx.get(
        f"{url}/HealthcareService",
        params={"organization.active": "true", "_summary": "count"},
    ).json()
    assert services["total"] > 2
