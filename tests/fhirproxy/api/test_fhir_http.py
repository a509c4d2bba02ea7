"""Path handling of the FHIR faces (issue 14, finding 5): the proxy reads a request target as
the FHIR-Directory reads it, relays only FHIR ids, and never passes on a directory failure.

Every attack is sent byte for byte (:mod:`tests.fhirproxy.raw`) to the real
FHIR-Proxy in front of the real FHIR-Directory (``stack``).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fhirproxy.api.test_search_routes import endpoint, put
from tests.fhirproxy.conftest import Stack
from tests.fhirproxy.raw import RawResponse, raw_request
from timkit.fhirproxy import upstream
from timkit.fhirproxy.api.provider_fhir_routes import PREFIX as PROVIDER_PREFIX
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.handlers import visibility

SEARCHER = "matrix:u/alice:hs1.example"
OWNER = "2-2.58.00000040"  # Organization/OrganizationExample

# Every encoding of finding 5, applied to an id: (suffix, what it tried).
ID_ATTACKS = (
    ("%2F_history", "history of the resource"),
    ("%2F_history%2F1", "vread"),
    ("%2f_history%2f1", "vread, lower-case escapes"),
    ("%3F_id=other", "a query smuggled upstream"),
    ("%3f_include=*", "a query smuggled upstream, lower case"),
    ("%01", "a control character"),
    ("%00", "a NUL"),
    ("%20", "a space"),
    ("%C3%A4", "non-ASCII"),
    ("%2F..%2F..%2FOrganization%2FOrganizationExample", "a traversal to another type"),
    ("%23frag", "a fragment"),
    ("%2524", "a double-encoded escape"),
    ("$everything", "an operation"),
)


def _refused(response: RawResponse, status: int | tuple[int, ...] = 400) -> dict[str, Any]:
    """The OperationOutcome of a refusal that leaks nothing of aiohttp or the directory."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status in statuses, (response.status, response.body)
    assert response.content_type == "application/fhir+json"
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    text = response.body.decode()
    for leak in ("aiohttp", "Traceback", "ClientError", "InvalidURL", "Bad Request", "http://"):
        assert leak not in text, text
    return outcome


async def _hidden_and_deleted(stack: Stack) -> None:
    await put(stack, endpoint("visible"))
    await put(stack, endpoint("off", status="off"))
    await put(stack, endpoint("gone"))
    deleted = await stack.client.delete(f"{stack.directory_url}/Endpoint/gone")
    assert deleted.status_code == 204


async def test_search_reads_only_fhir_ids_whatever_the_encoding(stack: Stack) -> None:
    await _hidden_and_deleted(stack)
    auth = {"Authorization": f"Bearer {stack.token(Kind.SEARCH, SEARCHER)}"}
    visible = await raw_request(stack.url, "/search/Endpoint/visible", auth)
    assert visible.status == 200, visible.body
    for resource_id in ("visible", "off", "gone"):
        for suffix, attack in ID_ATTACKS:
            response = await raw_request(stack.url, f"/search/Endpoint/{resource_id}{suffix}", auth)
            _refused(response, (400, 404))
            assert b'"resourceType":"Endpoint"' not in response.body, attack


async def test_search_refuses_history_vread_and_operations_as_paths(stack: Stack) -> None:
    await _hidden_and_deleted(stack)
    auth = {"Authorization": f"Bearer {stack.token(Kind.SEARCH, SEARCHER)}"}
    for target in (
        "/search/Endpoint/off/_history",
        "/search/Endpoint/off/_history/1",
        "/search/Endpoint/gone/_history/1",
        "/search/Endpoint/_history",
        "/search/_history",
        "/search/Endpoint/$validate",
        "/search/$export",
        "/search/Endpoint/visible/$everything",
        "/search/Endpoint/%2e%2e/Organization/OrganizationExample",
        "/search/Endpoint/../Organization/OrganizationExample",
        "/search/Endpoint//visible",
        "/search/Endpoint/visible%",
    ):
        _refused(await raw_request(stack.url, target, auth), (400, 404))
    # Raw UTF-8 on the request line: aiohttp's HTTP parser refuses it before any handler
    # runs (plain text, not labelled FHIR JSON, no resource in it).
    raw_utf8 = await raw_request(stack.url, b"/search/Endpoint/vis\xc3\xa4ble", auth)
    assert raw_utf8.status == 400
    assert raw_utf8.content_type != "application/fhir+json"
    assert b"resourceType" not in raw_utf8.body


async def test_search_hides_status_off_and_deleted_endpoints_alike(stack: Stack) -> None:
    await _hidden_and_deleted(stack)
    auth = {"Authorization": f"Bearer {stack.token(Kind.SEARCH, SEARCHER)}"}
    answers = []
    for resource_id in ("off", "gone", "never-existed"):
        outcome = _refused(
            await raw_request(stack.url, f"/search/Endpoint/{resource_id}", auth), 404
        )
        answers.append(outcome["issue"][0]["diagnostics"].replace(resource_id, "<id>"))
    assert len(set(answers)) == 1, answers
    found = await raw_request(stack.url, "/search/Endpoint?_id=off,gone,visible", auth)
    assert [e["resource"]["id"] for e in found.json()["entry"]] == ["visible"]


async def test_search_relays_the_clients_query_unchanged(stack: Stack) -> None:
    await put(stack, endpoint("with-space", name="Sprechstunde Dr. Müller"))
    auth = {"Authorization": f"Bearer {stack.token(Kind.SEARCH, SEARCHER)}"}
    found = await raw_request(
        stack.url, "/search/Endpoint?name=Sprechstunde%20Dr.%20M%C3%BCller", auth
    )
    assert found.status == 200, found.body
    assert [e["resource"]["name"] for e in found.json()["entry"]] == ["Sprechstunde Dr. Müller"]


async def test_owner_and_provider_paths_take_only_fhir_ids(stack: Stack) -> None:
    owner = {"Authorization": f"Bearer {stack.token(Kind.OWNER, OWNER)}"}
    stack.add_domain("provider-a.example", "provider-a", "9-2.58.00000077")
    provider = {"Authorization": f"Bearer {stack.token(Kind.PROVIDER, 'provider-a')}"}
    organization = "OrganizationExample"
    for prefix, auth in (("/owner", owner), (PROVIDER_PREFIX, provider)):
        for suffix, attack in ID_ATTACKS:
            for method in ("GET", "PUT", "DELETE"):
                response = await raw_request(
                    stack.url,
                    f"{prefix}/Endpoint/x{suffix}",
                    {**auth, "Content-Type": "application/fhir+json"},
                    method=method,
                    body=b"{}" if method == "PUT" else b"",
                )
                _refused(response, (400, 404))
                assert b'"resourceType":"Endpoint"' not in response.body, attack
        # The traversal of finding 5 on the provider path resolved to an Organization.
        traversal = await raw_request(
            stack.url,
            f"{prefix}/Endpoint/x%2F..%2F..%2FOrganization%2F{organization}",
            auth,
        )
        _refused(traversal)
        assert b'"resourceType":"Organization"' not in traversal.body


async def test_a_directory_failure_becomes_a_generic_operation_outcome(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = {"Authorization": f"Bearer {stack.token(Kind.SEARCH, SEARCHER)}"}

    async def broken(*_: Any, **__: Any) -> tuple[int, dict[str, str], bytes]:
        return 500, {}, b"Traceback (most recent call last): sqlite3.OperationalError secret"

    monkeypatch.setattr(upstream, "relay", broken)  # what search_routes calls
    response = await raw_request(stack.url, "/search/Endpoint", auth)
    outcome = _refused(response, 502)
    assert "secret" not in response.body.decode()
    assert "FHIR-Directory" in outcome["issue"][0]["diagnostics"]

    async def plain_400(*_: Any, **__: Any) -> tuple[int, dict[str, str], bytes]:
        return 400, {}, b"400: Bad Request\n\nhttp parser: invalid character in path"

    monkeypatch.setattr(upstream, "relay", plain_400)
    _refused(await raw_request(stack.url, "/search/Endpoint", auth), 400)


def test_every_bundle_entry_is_judged_on_its_own() -> None:
    """A Bundle the directory should never send on /search (a history, say) still leaves
    nothing hidden: entries without a resource, other types and hidden ones are dropped."""
    off = endpoint("off", status="off")
    visible = endpoint("visible")
    history = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 5,
        "entry": [
            {"fullUrl": "x/Endpoint/off", "resource": off, "search": {"mode": "match"}},
            {"fullUrl": "x/Endpoint/gone", "request": {"method": "DELETE", "url": "Endpoint/gone"}},
            {"resource": {"resourceType": "OperationOutcome", "issue": []}},
            {"resource": {"resourceType": "Bundle", "entry": [{"resource": off}]}},
            {"resource": visible, "search": {"mode": "match"}},
            "not an object",
        ],
    }
    raw = orjson.dumps(history)
    kept = orjson.loads(
        visibility.apply_visibility(raw, {}, False, frozenset(), None, "Endpoint", None)
    )
    assert [e["resource"]["id"] for e in kept["entry"]] == ["visible"]
    assert kept["total"] == 1
    not_a_searchset = orjson.dumps({**history, "type": "history"})
    with pytest.raises(Exception, match="not the one asked for"):
        visibility.apply_visibility(not_a_searchset, {}, False, frozenset(), None, "Endpoint", None)
    with pytest.raises(Exception, match="not the one asked for"):
        visibility.apply_visibility(raw, {}, False, frozenset(), None, "Endpoint", "off")
