"""``/owner``: owners change only their own entries and only what LDAP does not sync (AF_10037)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fhirproxy.api.test_search_routes import endpoint
from tests.fhirproxy.conftest import Stack
from timkit.core.fhir import ORIGIN, TELEMATIK_ID
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.handlers.rules import OWNER_EXTENSION

OWNER_A = "2-2.58.00000040"  # Organization/OrganizationExample (ldap), Practitioner dentist
OWNER_B = "3-07.2.1444560000.16.108"  # Organization/PharmacyOrganizationExample (ldap)
ORG_A = "Organization/OrganizationExample"
ORG_B = "Organization/PharmacyOrganizationExample"


@pytest.fixture(autouse=True)
def owner_domain(stack: Stack) -> None:
    """OWNER_A's TI-M domain is ``hs1.example`` (the MXIDs of :func:`endpoint`, ML-123626)."""
    stack.add_domain("hs1.example", "provider-a", OWNER_A)


async def owner(
    stack: Stack, telematik_id: str, method: str, path: str, body: Any = None
) -> httpx.Response:
    """``method`` on ``/owner<path>`` with an owner token of ``telematik_id``."""
    token = stack.token(Kind.OWNER, telematik_id)
    kwargs = {"json": body} if body is not None else {}
    return await stack.request(method, "/owner" + path, token, **kwargs)


def sub_organization(part_of: str | None, **extra: Any) -> dict[str, Any]:
    """An Organization an owner may create below ``part_of``."""
    body: dict[str, Any] = {"resourceType": "Organization", "name": "Station 3", "active": True}
    if part_of:
        body["partOf"] = {"reference": part_of}
    return {**body, **extra}


def diagnostics(response: httpx.Response) -> str:
    """The first issue's diagnostics of an OperationOutcome answer."""
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return str(outcome["issue"][0]["diagnostics"])


async def created(response: httpx.Response) -> dict[str, Any]:
    """The body of a 201 answer."""
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_ml_123482_owner_creates_linked_organization(stack: Stack) -> None:
    response = await owner(stack, OWNER_A, "POST", "/Organization", sub_organization(ORG_A))
    organization = await created(response)
    assert response.headers["Location"].startswith(stack.url + "/owner/Organization/")
    assert {"system": ORIGIN, "code": "owner"} in organization["meta"]["tag"]
    assert {"system": TELEMATIK_ID, "value": OWNER_A} in organization["identifier"]
    nested = sub_organization(f"Organization/{organization['id']}")
    await created(await owner(stack, OWNER_A, "POST", "/Organization", nested))


async def test_ml_123482_unlinked_creation_is_refused(stack: Stack) -> None:
    unlinked = await owner(stack, OWNER_A, "POST", "/Organization", sub_organization(None))
    assert unlinked.status_code == 422
    assert "ML-123482" in diagnostics(unlinked)
    assert unlinked.json()["issue"][0]["expression"] == ["Organization.partOf"]
    foreign = await owner(stack, OWNER_A, "POST", "/Organization", sub_organization(ORG_B))
    assert foreign.status_code == 422
    assert "ML-123482" in diagnostics(foreign)
    service = {"resourceType": "HealthcareService", "name": "x"}
    assert (await owner(stack, OWNER_A, "POST", "/HealthcareService", service)).status_code == 422
    location = {"resourceType": "Location", "address": {"city": "Berlin"}}
    assert (await owner(stack, OWNER_A, "POST", "/Location", location)).status_code == 422
    role = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": "Practitioner/TIPractitionerExample001"},
    }
    refused = await owner(stack, OWNER_A, "POST", "/PractitionerRole", role)
    assert refused.status_code == 422
    assert "ML-123482" in diagnostics(refused)
    orphan = await owner(stack, OWNER_A, "POST", "/Endpoint", endpoint("x"))
    assert orphan.status_code == 422
    assert orphan.json()["issue"][0]["expression"] == ["Endpoint.managingOrganization"]


async def test_ml_123482_owner_created_entries_carry_origin_and_owner(stack: Stack) -> None:
    body = endpoint("ignored", managingOrganization={"reference": ORG_A})
    del body["id"], body["meta"]
    made = await created(await owner(stack, OWNER_A, "POST", "/Endpoint", body))
    assert made["meta"]["tag"] == [{"system": ORIGIN, "code": "owner"}]
    assert {
        "url": OWNER_EXTENSION,
        "valueIdentifier": {"system": TELEMATIK_ID, "value": OWNER_A},
    } in made["extension"]
    role = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": "Practitioner/TIPractitionerExampleDentist"},
        "endpoint": [{"reference": f"Endpoint/{made['id']}"}],
    }
    await created(await owner(stack, OWNER_A, "POST", "/PractitionerRole", role))
    ldap_tag = {**body, "meta": {"tag": [{"system": ORIGIN, "code": "ldap"}]}}
    assert (await owner(stack, OWNER_A, "POST", "/Endpoint", ldap_tag)).status_code == 403


async def test_ml_123874_owner_isolation_between_organisations(stack: Stack) -> None:
    mine = await created(
        await owner(stack, OWNER_A, "POST", "/Organization", sub_organization(ORG_A))
    )
    path = f"/Organization/{mine['id']}"
    renamed = {**mine, "name": "taken over"}
    takeover = await owner(stack, OWNER_B, "PUT", path, renamed)
    assert takeover.status_code == 403
    assert "ML-123874" in diagnostics(takeover)
    assert (await owner(stack, OWNER_B, "DELETE", path)).status_code == 403
    pharmacy = (await owner(stack, OWNER_A, "GET", "/" + ORG_B)).json()
    extended = {**pharmacy, "contact": [{"name": {"text": "intruder"}}]}
    assert (await owner(stack, OWNER_A, "PUT", "/" + ORG_B, extended)).status_code == 403
    below_foreign = sub_organization(f"Organization/{mine['id']}")
    assert (await owner(stack, OWNER_B, "POST", "/Organization", below_foreign)).status_code == 422
    foreign_id = sub_organization(ORG_A, identifier=[{"system": TELEMATIK_ID, "value": OWNER_B}])
    stolen = await owner(stack, OWNER_A, "POST", "/Organization", foreign_id)
    assert stolen.status_code == 403
    assert "ML-123874" in diagnostics(stolen)
    updated = await owner(stack, OWNER_A, "PUT", path, renamed)
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "taken over"


async def test_ml_123874_ldap_synced_attributes_are_refused(stack: Stack) -> None:
    base = (await owner(stack, OWNER_A, "GET", "/" + ORG_A)).json()
    for element, value in [
        ("name", "Neuer Name"),
        ("alias", ["anders"]),
        ("identifier", [{"system": TELEMATIK_ID, "value": "2-2.58.99"}]),
        ("address", [{"city": "Bonn"}]),
        ("telecom", [{"system": "other", "value": "-----BEGIN CERTIFICATE-----"}]),
    ]:
        response = await owner(stack, OWNER_A, "PUT", "/" + ORG_A, {**base, element: value})
        assert response.status_code == 403, element
        assert "ML-123874" in diagnostics(response)
        assert response.json()["issue"][0]["expression"] == [f"Organization.{element}"]
    visibility = {
        "url": "https://gematik.de/fhir/directory/StructureDefinition/OrganizationVisibility",
        "valueCoding": {
            "system": "https://gematik.de/fhir/directory/CodeSystem/OrganizationVisibilityCS",
            "code": "hide-versicherte",
        },
    }
    allowed = {
        **base,
        "extension": [visibility],
        "telecom": [{"system": "phone", "value": "+49 30 1234"}],
    }
    response = await owner(stack, OWNER_A, "PUT", "/" + ORG_A, allowed)
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["tag"][0]["code"] == "ldap"
    dentist = (
        await owner(stack, OWNER_A, "GET", "/Practitioner/TIPractitionerExampleDentist")
    ).json()
    qualified = {**dentist, "qualification": [{"code": {"text": "Chirurg"}}]}
    path = "/Practitioner/TIPractitionerExampleDentist"
    assert (await owner(stack, OWNER_A, "PUT", path, qualified)).status_code == 403
    assert (await owner(stack, OWNER_A, "POST", "/Practitioner", dentist)).status_code == 403


async def test_ml_123874_ldap_service_only_links_endpoints(stack: Stack) -> None:
    body = endpoint("mine", managingOrganization={"reference": ORG_A})
    del body["id"]
    made = await created(await owner(stack, OWNER_A, "POST", "/Endpoint", body))
    path = "/HealthcareService/HealthcareServiceExample"
    service = (await owner(stack, OWNER_A, "GET", path)).json()
    linked = {
        **service,
        "endpoint": [*service["endpoint"], {"reference": f"Endpoint/{made['id']}"}],
    }
    response = await owner(stack, OWNER_A, "PUT", path, linked)
    assert response.status_code == 200, response.text
    renamed = {**response.json(), "name": "umbenannt"}
    refused = await owner(stack, OWNER_A, "PUT", path, renamed)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["expression"] == ["HealthcareService.name"]
    foreign = {**service, "endpoint": [{"reference": "Endpoint/PharmacyEndpointTIMExample"}]}
    assert (await owner(stack, OWNER_A, "PUT", path, foreign)).status_code == 422
    ldap_endpoint = "/Endpoint/KIMEndpointExample"
    kim = (await owner(stack, "1-1.58.00000040", "GET", ldap_endpoint)).json()
    changed = await owner(stack, "1-1.58.00000040", "PUT", ldap_endpoint, {**kim, "name": "x"})
    assert changed.status_code == 403
    assert (await owner(stack, "1-1.58.00000040", "DELETE", ldap_endpoint)).status_code == 403


async def test_af_10037_referenced_endpoint_cannot_be_deleted(stack: Stack) -> None:
    body = endpoint("linked", managingOrganization={"reference": ORG_A})
    del body["id"]
    made = await created(await owner(stack, OWNER_A, "POST", "/Endpoint", body))
    reference = {"reference": f"Endpoint/{made['id']}"}
    service = {
        "resourceType": "HealthcareService",
        "providedBy": {"reference": ORG_A},
        "endpoint": [reference],
    }
    hs = await created(await owner(stack, OWNER_A, "POST", "/HealthcareService", service))
    refused = await owner(stack, OWNER_A, "DELETE", f"/Endpoint/{made['id']}")
    assert refused.status_code == 409
    assert f"HealthcareService/{hs['id']}" in diagnostics(refused)
    unlinked = await owner(
        stack, OWNER_A, "PUT", f"/HealthcareService/{hs['id']}", {**hs, "endpoint": []}
    )
    assert unlinked.status_code == 200, unlinked.text
    deleted = await owner(stack, OWNER_A, "DELETE", f"/Endpoint/{made['id']}")
    assert deleted.status_code == 204
    assert (await owner(stack, OWNER_A, "GET", f"/Endpoint/{made['id']}")).status_code in (404, 410)


async def test_ml_123880_owner_only_directory_types(stack: Stack) -> None:
    patient = {"resourceType": "Patient"}
    response = await owner(stack, OWNER_A, "POST", "/Patient", patient)
    assert response.status_code == 400
    assert "ML-123880" in diagnostics(response)
    mismatch = await owner(stack, OWNER_A, "POST", "/Organization", {"resourceType": "Location"})
    assert mismatch.status_code == 400
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    refused = await owner(stack, OWNER_A, "POST", "", bundle)
    assert refused.status_code == 405
    assert "Bundle" in diagnostics(refused)


async def test_ml_123873_owner_needs_an_owner_token(stack: Stack) -> None:
    assert (await stack.request("GET", "/owner/Organization")).status_code == 401
    search_token = stack.token(Kind.SEARCH, "matrix:u/a:hs1.example")
    assert (await stack.request("GET", "/owner/Organization", search_token)).status_code == 403


async def test_af_10037_owner_search_is_capped_at_100(stack: Stack) -> None:
    entries = [
        {
            "request": {"method": "PUT", "url": f"Endpoint/bulk-{i}"},
            "resource": endpoint(f"bulk-{i}"),
        }
        for i in range(105)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    loaded = await stack.client.post(stack.directory_url + "/", json=bundle)
    assert loaded.status_code == 200, loaded.text
    for query in ("?_count=500", "", "?_count=100&name:contains=bulk"):
        response = await owner(stack, OWNER_A, "GET", "/Endpoint" + query)
        assert response.status_code == 200
        result = response.json()
        assert len(result["entry"]) == 100
        assert not [link for link in result["link"] if link["relation"] == "next"]
        assert all(e["fullUrl"].startswith(stack.url + "/owner/") for e in result["entry"])
    small = (await owner(stack, OWNER_A, "GET", "/Endpoint?_count=3")).json()
    assert len(small["entry"]) == 3


async def test_ml_123482_put_to_a_new_id_is_an_owner_create(stack: Stack) -> None:
    station = sub_organization(ORG_A, id="station-7")
    response = await owner(stack, OWNER_A, "PUT", "/Organization/station-7", station)
    made = await created(response)
    assert made["id"] == "station-7"
    assert {"system": ORIGIN, "code": "owner"} in made["meta"]["tag"]
    assert {"system": TELEMATIK_ID, "value": OWNER_A} in made["identifier"]
    body = endpoint("ep-put", managingOrganization={"reference": ORG_A})
    del body["meta"]
    ep = await created(await owner(stack, OWNER_A, "PUT", "/Endpoint/ep-put", body))
    assert {
        "url": OWNER_EXTENSION,
        "valueIdentifier": {"system": TELEMATIK_ID, "value": OWNER_A},
    } in ep["extension"]
    renamed = await owner(stack, OWNER_A, "PUT", "/Organization/station-7", {**made, "name": "7b"})
    assert renamed.status_code == 200, renamed.text


async def test_ml_123482_put_create_follows_the_create_rules(stack: Stack) -> None:
    unlinked = sub_organization(None, id="orphan")
    refused = await owner(stack, OWNER_A, "PUT", "/Organization/orphan", unlinked)
    assert refused.status_code == 422
    assert "ML-123482" in diagnostics(refused)
    below_foreign = sub_organization(ORG_B, id="under-b")
    assert (
        await owner(stack, OWNER_A, "PUT", "/Organization/under-b", below_foreign)
    ).status_code == 422
    ldap_tagged = sub_organization(
        ORG_A, id="fake-ldap", meta={"tag": [{"system": ORIGIN, "code": "ldap"}]}
    )
    forged = await owner(stack, OWNER_A, "PUT", "/Organization/fake-ldap", ldap_tagged)
    assert forged.status_code == 403
    assert "ML-123874" in diagnostics(forged)
    practitioner = {"resourceType": "Practitioner", "id": "new-doc"}
    assert (
        await owner(stack, OWNER_A, "PUT", "/Practitioner/new-doc", practitioner)
    ).status_code == 403
    for resource_id in ("orphan", "under-b", "fake-ldap"):
        missing = await owner(stack, OWNER_A, "GET", f"/Organization/{resource_id}")
        assert missing.status_code == 404


# -- ML-123626 / ML-123611: MXIDs only on the owner's own TI-M domains (issue 14, finding 6) --

PRACTITIONER = "1-1.58.00000040"  # Practitioner/TIPractitionerExample001, no Organization
FOREIGN_MXIDS = (
    "matrix:u/chefarzt:pharmacy.example",
    "matrix:u/chefarzt:PHARMACY.Example",
    "MATRIX:U/chefarzt:pharmacy.example",
    "matrix:u/chefarzt:pharmacy%2Eexample",
    "matrix:u/chefarzt%3Apharmacy.example",
    "matrix:u/chefarzt:pharmacy.example:443",
    "matrix:u/chefarzt:pharmacy.example?action=chat",
    "@chefarzt:pharmacy.example",
)
MALFORMED_MXIDS = (
    "matrix:u/chefarzt:pharmacy.example.",
    "matrix:u/chefarzt:pharmacy%252Eexample",
    "matrix:u/chefarzt",
    "matrix:r/room:hs1.example",
    "matrix:u/chef arzt:hs1.example",
    "matrix:u/chefarzt:hs1.example%00",
    "https://hs1.example/chefarzt",
    "",
)


def _endpoint_at(address: str, **extra: Any) -> dict[str, Any]:
    body = endpoint("new", managingOrganization={"reference": ORG_A}, **extra)
    del body["id"]
    return {**body, "address": address}


async def test_ml_123626_organisation_publishes_only_mxids_of_its_own_domains(
    stack: Stack,
) -> None:
    stack.add_domain("pharmacy.example", "provider-b", OWNER_B)
    for address in FOREIGN_MXIDS:
        refused = await owner(stack, OWNER_A, "POST", "/Endpoint", _endpoint_at(address))
        assert refused.status_code == 403, (address, refused.text)
        assert "ML-123626" in diagnostics(refused)
        assert "pharmacy.example" in diagnostics(refused)
        assert refused.json()["issue"][0]["expression"] == ["Endpoint.address"]
    for address in MALFORMED_MXIDS:
        refused = await owner(stack, OWNER_A, "POST", "/Endpoint", _endpoint_at(address))
        assert refused.status_code == 422, (address, refused.text)
        assert "ML-123626" in diagnostics(refused)
    for address in ("matrix:u/empfang:hs1.example", "matrix:u/empfang:HS1.example"):
        await created(await owner(stack, OWNER_A, "POST", "/Endpoint", _endpoint_at(address)))


async def test_ml_123626_an_update_cannot_move_an_endpoint_to_another_domain(
    stack: Stack,
) -> None:
    stack.add_domain("pharmacy.example", "provider-b", OWNER_B)
    mine = await created(
        await owner(stack, OWNER_A, "POST", "/Endpoint", _endpoint_at("matrix:u/a:hs1.example"))
    )
    moved = {**mine, "address": "matrix:u/chefarzt:pharmacy.example"}
    refused = await owner(stack, OWNER_A, "PUT", f"/Endpoint/{mine['id']}", moved)
    assert refused.status_code == 403
    assert "ML-123626" in diagnostics(refused)
    renamed = {**mine, "name": "Empfang"}
    assert (await owner(stack, OWNER_A, "PUT", f"/Endpoint/{mine['id']}", renamed)).is_success


async def test_ml_123626_mxids_in_telecom_are_checked_too(stack: Stack) -> None:
    stack.add_domain("pharmacy.example", "provider-b", OWNER_B)
    service = {
        "resourceType": "HealthcareService",
        "name": "Chat",
        "providedBy": {"reference": ORG_A},
        "telecom": [{"system": "other", "value": "matrix:u/chefarzt:pharmacy.example"}],
    }
    refused = await owner(stack, OWNER_A, "POST", "/HealthcareService", service)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["expression"] == ["HealthcareService.telecom"]


async def test_ml_123611_practitioner_publishes_mxids_only_on_federation_domains(
    stack: Stack,
) -> None:
    stack.add_domain("pharmacy.example", "provider-b", OWNER_B)
    body = endpoint("doc")
    del body["id"]
    elsewhere = {**body, "address": "matrix:u/doc:not-in-the-list.example"}
    refused = await owner(stack, PRACTITIONER, "POST", "/Endpoint", elsewhere)
    assert refused.status_code == 403, refused.text
    assert "ML-123611" in diagnostics(refused)
    malformed = {**body, "address": "matrix:u/doc"}
    assert (await owner(stack, PRACTITIONER, "POST", "/Endpoint", malformed)).status_code == 422
    listed = {**body, "address": "matrix:u/doc:pharmacy.example"}
    await created(await owner(stack, PRACTITIONER, "POST", "/Endpoint", listed))
