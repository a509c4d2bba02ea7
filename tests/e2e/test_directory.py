"""The FHIR-Directory as ``timkit up`` runs it: on loopback, seeded with the demo data, and
answering only requests that carry its bearer token (``<data>/fhir-directory/token``)."""

from __future__ import annotations

import os
import stat
from typing import Any

import httpx

from tests.support.federation import Federation


def _directory(federation: Federation) -> dict[str, Any]:
    return federation.component("fhir-directory")


def _auth(federation: Federation) -> dict[str, str]:
    token = (federation.data_dir / "fhir-directory" / "token").read_text("utf-8").strip()
    return {"Authorization": f"Bearer {token}"}


def test_directory_runs_on_loopback_and_is_healthy(federation: Federation) -> None:
    directory = _directory(federation)
    assert directory["healthy"] is True
    assert directory["url"].startswith("http://127.0.0.1:")
    metadata = httpx.get(f"{directory['url']}/metadata", headers=_auth(federation)).json()
    assert metadata["fhirVersion"] == "4.0.1"


def test_directory_refuses_requests_without_its_token(federation: Federation) -> None:
    """Finding 7: anything that reaches the loopback port (a Synapse pusher, say) could write."""
    url = _directory(federation)["url"]
    token_file = federation.data_dir / "fhir-directory" / "token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert httpx.get(f"{url}/health").status_code == 200
    endpoint = {"resourceType": "Endpoint", "status": "active", "address": "matrix:u/x:evil"}
    for response in (
        httpx.get(f"{url}/Endpoint"),
        httpx.post(f"{url}/Endpoint", json=endpoint),
        httpx.put(f"{url}/Endpoint/injected", json={**endpoint, "id": "injected"}),
        httpx.get(f"{url}/Endpoint", headers={"Authorization": "Bearer guessed"}),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
    assert httpx.get(f"{url}/Endpoint/injected", headers=_auth(federation)).status_code == 404


def test_demo_organisations_are_found_by_their_matrix_endpoint(federation: Federation) -> None:
    url = _directory(federation)["url"]
    for service in federation.status()["services"]:
        domain = service["domain"]
        bundle = httpx.get(
            f"{url}/Endpoint",
            headers=_auth(federation),
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
        headers=_auth(federation),
        params={"practitioner.active": "true", "_summary": "count"},
    ).json()
    assert roles["total"] > 0
    services = httpx.get(
        f"{url}/HealthcareService",
        headers=_auth(federation),
        params={"organization.active": "true", "_summary": "count"},
    ).json()
    assert services["total"] > 2
