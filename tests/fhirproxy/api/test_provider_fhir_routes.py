"""``/tim-provider-services/FHIR``: providers manage their own Organizations and Endpoints
(seed 003 §5.2.1.4, AF_10048): the client_id in ``Organization.alias`` marks them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fhirproxy.api.test_search_routes import endpoint
from tests.fhirproxy.conftest import Stack
from timkit.core.fhir import TELEMATIK_ID
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.handlers.signed_list import Federation
from timkit.fhirproxy.storage.domains import Domain

PREFIX = "/tim-provider-services/FHIR"
TIDS = {"provider-a": "9-2.58.00000077", "provider-b": "9-2.58.00000078"}
"""The TelematikID each test provider registered a domain for."""


@pytest.fixture(autouse=True)
def domains(stack: Stack) -> None:
    """Each provider of :data:`TIDS` registers one TI-M domain for its TelematikID."""
    federation = Federation.open(stack.ctx.config, stack.ctx.db)
    for client_id, tid in TIDS.items():
        federation.add(Domain(f"{client_id}.example", tid, tim_anbieter=client_id))


async def provider(
    stack: Stack, client_id: str, method: str, path: str, body: Any = None
) -> httpx.Response:
    """``method`` on the provider FHIR path with a provider token of ``client_id``."""
    kwargs = {"json": body} if body is not None else {}
    token = stack.token(Kind.PROVIDER, client_id)
    return await stack.request(method, PREFIX + path, token, **kwargs)


def organization(alias: list[str], tid: str | None = None) -> dict[str, Any]:
    """A provider's Organization: TelematikID ``tid``, by default that of the alias's provider."""
    tid = tid or next((TIDS[a] for a in alias if a in TIDS), "9-2.58.00000099")
    return {
        "resourceType": "Organization",
        "identifier": [{"system": TELEMATIK_ID, "value": tid}],
        "name": "Klinikum Nord",
        "alias": alias,
        "active": True,
    }


async def create(stack: Stack, client_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create ``body`` as ``client_id``; the stored resource."""
    response = await provider(stack, client_id, "POST", f"/{body['resourceType']}", body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_af_10048_provider_organization_needs_client_id_in_alias(stack: Stack) -> None:
    refused = await provider(stack, "provider-a", "POST", "/Organization", organization(["X"]))
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["Organization.alias"]
    made = await create(stack, "provider-a", organization(["Klinik", "provider-a"]))
    assert made["meta"]["tag"][0]["code"] == "owner"
    dropped = {**made, "alias": ["Klinik"]}
    response = await provider(stack, "provider-a", "PUT", f"/Organization/{made['id']}", dropped)
    assert response.status_code == 422


async def test_af_10048_provider_manages_only_its_own_entries(stack: Stack) -> None:
    org_a = await create(stack, "provider-a", organization(["provider-a"]))
    org_b = await create(stack, "provider-b", organization(["provider-b"]))
    body = endpoint(
        "x",
        managingOrganization={"reference": f"Organization/{org_a['id']}"},
        address="matrix:u/x:provider-a.example",
    )
    del body["id"]
    ep_a = await create(stack, "provider-a", body)
    path_a = f"/Organization/{org_a['id']}"
    assert (await provider(stack, "provider-a", "GET", path_a)).status_code == 200
    assert (await provider(stack, "provider-b", "GET", path_a)).status_code == 403
    renamed = {**org_a, "name": "übernommen", "alias": ["provider-a", "provider-b"]}
    assert (await provider(stack, "provider-b", "PUT", path_a, renamed)).status_code == 403
    assert (await provider(stack, "provider-b", "DELETE", path_a)).status_code == 403
    ep_path = f"/Endpoint/{ep_a['id']}"
    assert (await provider(stack, "provider-b", "GET", ep_path)).status_code == 403
    assert (await provider(stack, "provider-b", "DELETE", ep_path)).status_code == 403
    foreign = endpoint(
        "y",
        managingOrganization={"reference": f"Organization/{org_b['id']}"},
        address="matrix:u/y:provider-b.example",
    )
    del foreign["id"]
    refused = await provider(stack, "provider-a", "POST", "/Endpoint", foreign)
    assert refused.status_code == 422
    ldap_org = await provider(stack, "provider-a", "GET", "/Organization/OrganizationExample")
    assert ldap_org.status_code == 403
    found = (await provider(stack, "provider-a", "GET", "/Organization?_count=100")).json()
    assert {e["resource"]["id"] for e in found["entry"]} == {org_a["id"]}
    endpoints = (await provider(stack, "provider-a", "GET", "/Endpoint")).json()
    assert {e["resource"]["id"] for e in endpoints["entry"]} == {ep_a["id"]}
    assert all(e["fullUrl"].startswith(stack.url + PREFIX) for e in endpoints["entry"])
    include = await provider(
        stack, "provider-a", "GET", "/Organization?_revinclude=Endpoint:organization"
    )
    assert include.status_code == 400


async def test_af_10048_provider_delete_rules(stack: Stack) -> None:
    org = await create(stack, "provider-a", organization(["provider-a"]))
    body = endpoint(
        "x",
        managingOrganization={"reference": f"Organization/{org['id']}"},
        address="matrix:u/x:provider-a.example",
    )
    del body["id"]
    ep = await create(stack, "provider-a", body)
    referenced = await provider(stack, "provider-a", "DELETE", f"/Organization/{org['id']}")
    assert referenced.status_code == 409
    assert f"Endpoint/{ep['id']}" in referenced.json()["issue"][0]["diagnostics"]
    assert (
        await provider(stack, "provider-a", "DELETE", f"/Endpoint/{ep['id']}")
    ).status_code == 204
    assert (
        await provider(stack, "provider-a", "DELETE", f"/Organization/{org['id']}")
    ).status_code == 204


async def test_ml_123881_provider_fhir_needs_a_provider_token(stack: Stack) -> None:
    assert (await stack.request("GET", PREFIX + "/Organization")).status_code == 401
    owner = stack.token(Kind.OWNER, "2-2.58.00000040")
    assert (await stack.request("GET", PREFIX + "/Organization", owner)).status_code == 403
    other_type = await provider(stack, "provider-a", "GET", "/HealthcareService")
    assert other_type.status_code == 403
    assert other_type.json()["resourceType"] == "OperationOutcome"


async def test_ml_123881_provider_organization_needs_a_registered_telematik_id(
    stack: Stack,
) -> None:
    foreign = await provider(
        stack,
        "provider-a",
        "POST",
        "/Organization",
        organization(["provider-a"], TIDS["provider-b"]),
    )
    assert foreign.status_code == 403
    outcome = foreign.json()["issue"][0]
    assert "ML-123881" in outcome["diagnostics"]
    assert outcome["expression"] == ["Organization.identifier"]
    anonymous = {**organization(["provider-a"]), "identifier": []}
    assert (
        await provider(stack, "provider-a", "POST", "/Organization", anonymous)
    ).status_code == 403
    made = await create(stack, "provider-a", organization(["provider-a"]))
    path = f"/Organization/{made['id']}"
    second = {"system": TELEMATIK_ID, "value": TIDS["provider-b"]}
    widened = {**made, "identifier": [*made["identifier"], second]}
    refused = await provider(stack, "provider-a", "PUT", path, widened)
    assert refused.status_code == 403
    assert TIDS["provider-b"] in refused.json()["issue"][0]["diagnostics"]
    renamed = await provider(stack, "provider-a", "PUT", path, {**made, "name": "Klinikum Süd"})
    assert renamed.status_code == 200, renamed.text


async def test_ml_123626_provider_endpoint_only_on_its_organisations_domains(
    stack: Stack,
) -> None:
    """Finding 6 on the provider path: an Endpoint of provider A's organisation may carry
    MXIDs of that organisation's domains only, not of another organisation's domain."""
    org = await create(stack, "provider-a", organization(["provider-a"]))
    for address in (
        "matrix:u/chefarzt:provider-b.example",
        "matrix:u/chefarzt:Provider-B.example",
        "matrix:u/chefarzt:provider-b%2Eexample",
        "@chefarzt:provider-b.example",
    ):
        body = endpoint(
            "x", managingOrganization={"reference": f"Organization/{org['id']}"}, address=address
        )
        del body["id"]
        refused = await provider(stack, "provider-a", "POST", "/Endpoint", body)
        assert refused.status_code == 403, (address, refused.text)
        assert "ML-123626" in refused.json()["issue"][0]["diagnostics"]
    body = endpoint(
        "x",
        managingOrganization={"reference": f"Organization/{org['id']}"},
        address="matrix:u/x:provider-a.example",
    )
    del body["id"]
    made = await create(stack, "provider-a", body)
    moved = {**made, "address": "matrix:u/x:provider-b.example"}
    refused = await provider(stack, "provider-a", "PUT", f"/Endpoint/{made['id']}", moved)
    assert refused.status_code == 403
