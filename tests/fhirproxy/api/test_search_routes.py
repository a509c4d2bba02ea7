"""``/search``: read-only relay with public links and visibility rules (AF_10036)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.fhirproxy.conftest import Stack
from timkit.core.fhir import DIRECTORY_TYPES, ORIGIN
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.handlers.signed_list import Federation
from timkit.fhirproxy.storage.domains import Domain

USER = "matrix:u/alice:hs1.example"
INSURED = "matrix:u/bob:kasse.example"


async def put(stack: Stack, resource: dict[str, Any]) -> None:
    """Write ``resource`` straight into the FHIR-Directory."""
    url = f"{stack.directory_url}/{resource['resourceType']}/{resource['id']}"
    response = await stack.client.put(url, json=resource)
    assert response.status_code in (200, 201), response.text


def endpoint(resource_id: str, status: str = "active", **extra: Any) -> dict[str, Any]:
    """A TI-Messenger Endpoint of Origin owner."""
    return {
        "resourceType": "Endpoint",
        "id": resource_id,
        "meta": {
            "tag": [
                {"system": "https://gematik.de/fhir/directory/CodeSystem/Origin", "code": "owner"}
            ]
        },
        "status": status,
        "name": resource_id,
        "address": f"matrix:u/{resource_id}:hs1.example",
        "connectionType": {
            "system": "https://gematik.de/fhir/directory/CodeSystem/EndpointDirectoryConnectionType",
            "code": "tim",
        },
        "payloadType": [
            {
                "coding": [
                    {
                        "system": "https://gematik.de/fhir/directory/CodeSystem/EndpointDirectoryPayloadType",
                        "code": "tim-chat",
                    }
                ]
            }
        ],
        **extra,
    }


def ids(bundle: dict[str, Any]) -> set[str]:
    """``Type/id`` of every entry of a Bundle."""
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
    }


async def search(stack: Stack, path: str, subject: str = USER, **claims: Any) -> httpx.Response:
    """GET ``/search<path>`` with a search token for ``subject``."""
    return await stack.request("GET", "/search" + path, stack.token(Kind.SEARCH, subject, **claims))


async def test_af_10036_search_relays_with_public_links(stack: Stack) -> None:
    response = await search(stack, "/Organization?_count=2")
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert len(bundle["entry"]) == 2
    urls = [e["fullUrl"] for e in bundle["entry"]] + [link["url"] for link in bundle["link"]]
    assert all(u.startswith(stack.url + "/search/Organization") for u in urls), urls
    assert stack.directory_url not in response.text
    assert any(link["relation"] == "next" for link in bundle["link"])


async def test_af_10036_search_passes_encoded_values_unchanged(stack: Stack) -> None:
    identifier = "https%3A%2F%2Fgematik.de%2Ffhir%2Fsid%2Ftelematik-id%7C2-2.58.00000040"
    by_identifier = await search(stack, f"/Organization?identifier={identifier}")
    assert by_identifier.status_code == 200, by_identifier.text
    assert ids(by_identifier.json()) == {"Organization/OrganizationExample"}
    name = (await search(stack, "/Organization/OrganizationExample")).json()["name"]
    by_name = await search(stack, f"/Organization?name:exact={quote(name)}")
    assert by_name.status_code == 200, by_name.text
    assert "Organization/OrganizationExample" in ids(by_name.json())


async def test_af_10036_search_read_by_id(stack: Stack) -> None:
    response = await search(stack, "/Organization/OrganizationExample")
    assert response.status_code == 200
    assert response.json()["id"] == "OrganizationExample"
    assert response.headers["ETag"].startswith('W/"')
    missing = await search(stack, "/Organization/nope")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


def assert_read_only_capability(statement: dict[str, Any], url: str) -> None:
    """``statement`` advertises read and search-type only, for the six directory types."""
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["implementation"]["url"] == url
    (rest,) = statement["rest"]
    assert "interaction" not in rest
    types = {r["type"] for r in rest["resource"]}
    assert types == DIRECTORY_TYPES
    for resource in rest["resource"]:
        assert resource["interaction"] == [{"code": "read"}, {"code": "search-type"}]
        assert "updateCreate" not in resource
        assert "conditionalCreate" not in resource
        assert resource["searchParam"]


async def test_af_10036_search_metadata_is_read_only(stack: Stack) -> None:
    response = await search(stack, "/metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/fhir+json")
    assert_read_only_capability(response.json(), stack.url + "/search")
    direct = (await stack.client.get(stack.directory_url + "/metadata")).json()
    assert {"code": "create"} in direct["rest"][0]["resource"][0]["interaction"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/Organization"),
        ("PUT", "/Organization/OrganizationExample"),
        ("DELETE", "/Organization/OrganizationExample"),
        ("PATCH", "/Organization/OrganizationExample"),
        ("POST", ""),
        ("POST", "/Organization/_search"),
    ],
)
async def test_af_10036_search_is_read_only(stack: Stack, method: str, path: str) -> None:
    token = stack.token(Kind.SEARCH, USER)
    response = await stack.request(
        method, "/search" + path, token, json={"resourceType": "Organization"}
    )
    assert response.status_code == 405
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "read-only" in outcome["issue"][0]["diagnostics"]
    check = await search(stack, "/Organization/OrganizationExample")
    assert check.json()["name"] != ""


async def test_af_10036_search_has_no_history(stack: Stack) -> None:
    response = await search(stack, "/Organization/OrganizationExample/_history")
    assert response.status_code == 404


async def test_ml_123485_search_needs_a_search_token(stack: Stack) -> None:
    anonymous = await stack.request("GET", "/search/Organization")
    assert anonymous.status_code == 401
    owner = await stack.request(
        "GET", "/search/Organization", stack.token(Kind.OWNER, "2-2.58.00000040")
    )
    assert owner.status_code == 403


async def test_ml_123880_search_only_directory_types(stack: Stack) -> None:
    response = await search(stack, "/Patient")
    assert response.status_code == 400
    assert "ML-123880" in response.json()["issue"][0]["diagnostics"]
    health = await search(stack, "/health")
    assert health.status_code == 400


async def test_af_10036_inactive_endpoints_are_hidden(stack: Stack) -> None:
    await put(stack, endpoint("ep-off", status="off"))
    await put(stack, endpoint("ep-on"))
    await put(
        stack,
        {
            "resourceType": "HealthcareService",
            "id": "hs-two-endpoints",
            "meta": {
                "tag": [
                    {
                        "system": "https://gematik.de/fhir/directory/CodeSystem/Origin",
                        "code": "owner",
                    }
                ]
            },
            "providedBy": {"reference": "Organization/OrganizationExample"},
            "endpoint": [{"reference": "Endpoint/ep-off"}, {"reference": "Endpoint/ep-on"}],
        },
    )
    found = ids((await search(stack, "/Endpoint?_count=100")).json())
    assert "Endpoint/ep-on" in found
    assert "Endpoint/ep-off" not in found
    asked = (await search(stack, "/Endpoint?status=off")).json()
    assert ids(asked) == set()
    assert asked["total"] == 0
    assert (await search(stack, "/Endpoint/ep-off")).status_code == 404
    assert (await search(stack, "/Endpoint/ep-on")).status_code == 200
    included = ids(
        (
            await search(
                stack, "/HealthcareService?_id=hs-two-endpoints&_include=HealthcareService:endpoint"
            )
        ).json()
    )
    assert included == {"HealthcareService/hs-two-endpoints", "Endpoint/ep-on"}


async def test_af_10036_visibility_hides_entries_from_insured_persons(stack: Stack) -> None:
    federation = Federation.open(stack.ctx.config, stack.ctx.db)
    federation.add(Domain("kasse.example", "5-2.58.00000099", True, ("101575519",), "provider-a"))
    hidden = {"Endpoint/MessengerEndpointWithVisibility", "Organization/OrganizationExample001"}
    for subject in (USER, INSURED):
        endpoints = ids((await search(stack, "/Endpoint?_count=100", subject)).json())
        organizations = ids((await search(stack, "/Organization?_count=100", subject)).json())
        included = ids(
            (
                await search(
                    stack,
                    "/HealthcareService?_id=HealthcareServiceExample"
                    "&_include=HealthcareService:endpoint",
                    subject,
                )
            ).json()
        )
        read = await search(stack, "/Endpoint/MessengerEndpointWithVisibility", subject)
        seen = endpoints | organizations | included
        assert "Organization/OrganizationExample" in organizations
        assert "Endpoint/OrganizationExample001-Endpoint-TIM" in endpoints
        if subject == INSURED:
            assert not hidden & seen
            assert read.status_code == 404
        else:
            assert hidden <= seen
            assert read.status_code == 200
    claimed = await search(stack, "/Organization/OrganizationExample001", USER, isInsurance=True)
    assert claimed.status_code == 404


async def test_af_10036_services_of_hidden_organizations_are_hidden_from_insured(
    stack: Stack,
) -> None:
    """OrganizationExample001 (api-vzd example) is ``hide-versicherte``; so are its services."""
    federation = Federation.open(stack.ctx.config, stack.ctx.db)
    federation.add(Domain("kasse.example", "5-2.58.00000099", True, ("101575519",), "provider-a"))
    origin = {"tag": [{"system": ORIGIN, "code": "owner"}]}
    hidden_org = {"reference": "Organization/OrganizationExample001"}
    shown_org = {"reference": "Organization/OrganizationExample"}
    practitioner = {"reference": "Practitioner/TIPractitionerExampleDentist"}
    for resource in (
        {"resourceType": "HealthcareService", "id": "hs-hidden", "providedBy": hidden_org},
        {"resourceType": "HealthcareService", "id": "hs-shown", "providedBy": shown_org},
        {
            "resourceType": "PractitionerRole",
            "id": "pr-hidden",
            "practitioner": practitioner,
            "organization": hidden_org,
        },
        {"resourceType": "PractitionerRole", "id": "pr-alone", "practitioner": practitioner},
    ):
        await put(stack, {**resource, "meta": origin})
    hidden = {"HealthcareService/hs-hidden", "PractitionerRole/pr-hidden"}
    for subject in (USER, INSURED):
        services = (await search(stack, "/HealthcareService?_count=100", subject)).json()
        roles = (await search(stack, "/PractitionerRole?_count=100", subject)).json()
        revincluded = (
            await search(
                stack,
                "/Organization?_id=OrganizationExample,OrganizationExample001"
                "&_revinclude=HealthcareService:organization",
                subject,
            )
        ).json()
        seen = ids(services) | ids(roles) | ids(revincluded)
        reads = [(await search(stack, f"/{ref}", subject)).status_code for ref in sorted(hidden)]
        assert {"HealthcareService/hs-shown", "PractitionerRole/pr-alone"} <= seen
        assert services["total"] == len(services["entry"])
        assert roles["total"] == len(roles["entry"])
        if subject == INSURED:
            assert not hidden & seen
            assert reads == [404, 404]
        else:
            assert hidden <= seen
            assert reads == [200, 200]
