"""Issue 14's attacks on the VZD-FHIR-Directory, replayed against ``timkit up``.

The real FHIR-Proxy (TLS) in front of the real FHIR-Directory, with tokens bought the way a
client buys them: a search-accesstoken for a real Synapse OpenID token, an owner-accesstoken
for a RegService-OpenID-Token, a provider-accesstoken for the RD's client credentials. Every
request target is sent byte for byte (:func:`tests.fhirproxy.raw.raw_request`).
"""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_directory_proxy import (
    A,
    B,
    openid_token,
    owner_token,
    provider_token,
    proxy_component,
    regservice_token,
    tls_client,
)
from tests.fhirproxy.raw import RawResponse, raw_request
from tests.support.federation import Federation
from timkit.core.fhir import CONNECTION_TYPE, PAYLOAD_TYPE
from timkit.runtime.config import MessengerServiceConfig
from timkit.runtime.demo import telematik_id

ORGANIZATION_A = "Organization/praxis-sonnenschein-org"
FHIR_JSON = "application/fhir+json"


def _tid(domain: str) -> str:
    return telematik_id(
        MessengerServiceConfig(domain=domain, organisation="-", port=1, forward_proxy_port=2)
    )


def _context(federation: Federation) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=federation.ca_cert)


def _endpoint(address: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Endpoint",
        "status": "active",
        "connectionType": {"system": CONNECTION_TYPE, "code": "tim"},
        "name": name,
        "payloadType": [{"coding": [{"system": PAYLOAD_TYPE, "code": "tim-chat"}]}],
        "address": address,
        "managingOrganization": {"reference": ORGANIZATION_A},
    }


def _refused(response: RawResponse, statuses: tuple[int, ...]) -> dict[str, Any]:
    assert response.status in statuses, (response.status, response.body)
    assert response.content_type == FHIR_JSON
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    text = response.body.decode()
    for leak in ("aiohttp", "Traceback", "InvalidURL", "Bad Request", "http://127.0.0.1"):
        assert leak not in text, text
    assert '"resourceType":"Endpoint"' not in text.replace(" ", "")
    return outcome


@pytest.fixture(scope="module")
def hidden_endpoints(
    federation: Federation, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Owner A's Endpoints: one shown, one hidden by ``status=off``, one deleted."""
    url = proxy_component(federation)["url"]
    owner = owner_token(federation, url, tmp_path_factory.mktemp("owner"), _tid(A))
    tag = uuid.uuid4().hex[:8]
    made: dict[str, str] = {}
    headers = {"Authorization": f"Bearer {owner}", "Content-Type": FHIR_JSON}
    with tls_client(federation) as client:
        for kind in ("shown", "off", "deleted"):
            body = _endpoint(f"matrix:u/{kind}-{tag}:{A}", f"{kind} {tag}")
            created = client.post(f"{url}/owner/Endpoint", json=body, headers=headers)
            assert created.status_code == 201, created.text
            made[kind] = created.json()["id"]
        stored = client.get(f"{url}/owner/Endpoint/{made['off']}", headers=headers).json()
        off = {**stored, "status": "off"}
        updated = client.put(f"{url}/owner/Endpoint/{made['off']}", json=off, headers=headers)
        assert updated.status_code == 200, updated.text
        deleted = client.delete(f"{url}/owner/Endpoint/{made['deleted']}", headers=headers)
        assert deleted.status_code == 204, deleted.text
    return made


@pytest.fixture(scope="module")
def search_auth(federation: Federation) -> dict[str, str]:
    """A search-accesstoken of a user of B, bought with B's real Synapse OpenID token."""
    url = proxy_component(federation)["url"]
    openid = openid_token(federation, B, f"searcher-{uuid.uuid4().hex[:6]}")
    with tls_client(federation) as client:
        response = client.get(
            f"{url}/tim-authenticate", params={"mxId": B}, headers={"X-Matrix-OpenID-Token": openid}
        )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.mark.timeout(180)
async def test_search_path_encodings_reach_no_hidden_or_deleted_endpoint(
    federation: Federation, hidden_endpoints: dict[str, str], search_auth: dict[str, str]
) -> None:
    """Finding 5 on /search: each encoding of the attack run, on a shown, a ``status=off`` and
    a deleted Endpoint."""
    url, context = proxy_component(federation)["url"], _context(federation)
    shown = await raw_request(
        url, f"/search/Endpoint/{hidden_endpoints['shown']}", search_auth, ssl_context=context
    )
    assert shown.status == 200, shown.body
    for kind in ("shown", "off", "deleted"):
        resource_id = hidden_endpoints[kind]
        for suffix in (
            "%2F_history",
            "%2F_history%2F1",
            "%2F_history%2F2",
            "%3F_id=" + resource_id,
            "%01",
            "%20",
            "%C3%A4",
            "/_history",
            "/_history/1",
        ):
            response = await raw_request(
                url, f"/search/Endpoint/{resource_id}{suffix}", search_auth, ssl_context=context
            )
            _refused(response, (400, 404))
    for kind in ("off", "deleted"):
        read = await raw_request(
            url, f"/search/Endpoint/{hidden_endpoints[kind]}", search_auth, ssl_context=context
        )
        _refused(read, (404,))
    ids = ",".join(hidden_endpoints.values())
    found = await raw_request(url, f"/search/Endpoint?_id={ids}", search_auth, ssl_context=context)
    assert found.status == 200, found.body
    assert [e["resource"]["id"] for e in found.json().get("entry", [])] == [
        hidden_endpoints["shown"]
    ]


@pytest.mark.timeout(120)
async def test_a_repeated_security_header_is_refused_not_guessed(
    federation: Federation, search_auth: dict[str, str]
) -> None:
    """Finding 4 on the FHIR-Proxy: a valid token and a second copy of the same header; the
    proxy and the directory could each read another copy, so neither is used."""
    url, context = proxy_component(federation)["url"], _context(federation)
    valid = search_auth["Authorization"]
    for pairs in (
        [("Authorization", valid), ("Authorization", "Bearer forged")],
        [("Authorization", "Bearer forged"), ("authorization", valid)],
    ):
        response = await raw_request(url, "/search/Endpoint?_count=1", pairs, ssl_context=context)
        assert response.status == 400, response.body
        assert b"given 2 times" in response.body
    openid = openid_token(federation, B, f"twice-{uuid.uuid4().hex[:6]}")
    response = await raw_request(
        url,
        f"/tim-authenticate?mxId={B}",
        [("X-Matrix-OpenID-Token", openid), ("X-Matrix-OpenID-Token", "forged")],
        ssl_context=context,
    )
    assert response.status == 400, response.body
    assert b"given 2 times" in response.body


@pytest.mark.timeout(120)
async def test_provider_path_traversal_does_not_resolve_to_an_organization(
    federation: Federation,
) -> None:
    """Finding 5 on /tim-provider-services/FHIR: ``Endpoint/x%2F..%2F..%2FOrganization%2F…``
    resolved to an Organization."""
    url, context = proxy_component(federation)["url"], _context(federation)
    auth = {"Authorization": f"Bearer {provider_token(federation, url)}"}
    for target in (
        "/tim-provider-services/FHIR/Endpoint/x%2F..%2F..%2FOrganization%2Fpraxis-sonnenschein-org",
        "/tim-provider-services/FHIR/Endpoint/x%2f..%2f..%2fOrganization%2fpraxis-sonnenschein-org",
        "/tim-provider-services/FHIR/Endpoint/%2e%2e/Organization/praxis-sonnenschein-org",
        "/tim-provider-services/FHIR/Endpoint/x%2F_history",
        "/tim-provider-services/FHIR/Endpoint/x%3F_id=praxis-sonnenschein-org",
        "/tim-provider-services/FHIR/Endpoint/x%01",
    ):
        response = await raw_request(url, target, auth, ssl_context=context)
        _refused(response, (400, 404))
        assert '"Organization"' not in response.body.decode()


@pytest.mark.timeout(120)
def test_ml_123626_owner_cannot_publish_another_organisations_mxid(
    federation: Federation, tmp_path: Path
) -> None:
    """Finding 6: an owner token of A published ``matrix:u/<someone>:<B's domain>``, which let
    anyone invite that person past their Freigabeliste (stage 3)."""
    url = proxy_component(federation)["url"]
    owner = owner_token(federation, url, tmp_path, _tid(A))
    headers = {"Authorization": f"Bearer {owner}", "Content-Type": FHIR_JSON}
    with tls_client(federation) as client:
        for address in (
            f"matrix:u/chefarzt:{B}",
            f"matrix:u/chefarzt:{B.upper()}",
            f"matrix:u/chefarzt:{B.replace('.', '%2E')}",
            f"matrix:u/chefarzt%3A{B}",
            f"matrix:u/chefarzt:{B}:443",
            f"@chefarzt:{B}",
        ):
            refused = client.post(
                f"{url}/owner/Endpoint", json=_endpoint(address, "Chefarzt"), headers=headers
            )
            assert refused.status_code == 403, (address, refused.text)
            diagnostics = refused.json()["issue"][0]["diagnostics"]
            assert "ML-123626" in diagnostics
            assert B in diagnostics
        malformed = client.post(
            f"{url}/owner/Endpoint",
            json=_endpoint(f"matrix:u/chefarzt:{B}.", "Chefarzt"),
            headers=headers,
        )
        assert malformed.status_code == 422, malformed.text


@pytest.mark.timeout(120)
def test_has_nested_20_deep_is_a_400_through_the_proxy(
    federation: Federation, search_auth: dict[str, str]
) -> None:
    """Finding 8: ``_has`` nested 20 deep was a 500 (SQLite's parser stack)."""
    url = proxy_component(federation)["url"]
    with tls_client(federation) as client:
        response = client.get(
            f"{url}/search/Organization?" + "_has:Organization:partof:" * 20 + "name=x",
            headers=search_auth,
        )
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "too-costly"
    assert "the limit is" in issue["diagnostics"]


@pytest.mark.timeout(120)
def test_ml_123873_a_regservice_token_buys_one_owner_token(
    federation: Federation, tmp_path: Path
) -> None:
    """Finding 8: a RegService-OpenID-Token was exchanged twice within its lifetime."""
    url = proxy_component(federation)["url"]
    token = regservice_token(federation, url, tmp_path, _tid(A))
    with tls_client(federation) as client:
        first = client.get(
            f"{url}/owner-authenticate", headers={"Authorization": f"Bearer {token}"}
        )
        assert first.status_code == 200, first.text
        second = client.get(
            f"{url}/owner-authenticate", headers={"Authorization": f"Bearer {token}"}
        )
    assert second.status_code == 401, second.text
    assert second.json()["error"] == "invalid_token"
    assert "ML-123873" in second.json()["error_description"]
