"""ML-123682: protection against the OWASP Top-10 risks, as far as a test can show it."""

from __future__ import annotations

from pathlib import Path

from tests.fhirproxy.conftest import Stack, start_stack
from timkit.core.process import free_port
from timkit.fhirproxy.auth.access_tokens import Kind

SEARCHER = "matrix:u/alice:praxis.tim.test"


async def test_ml_123682_injection_in_search_values_is_inert(stack: Stack) -> None:
    token = stack.token(Kind.SEARCH, SEARCHER)
    for value in ("' OR 1=1 --", '"; DROP TABLE resources; --', "%' UNION SELECT 1 --"):
        response = await stack.request("GET", "/search/Organization", token, params={"name": value})
        assert response.status_code == 200, response.text
        assert response.json()["resourceType"] == "Bundle"
        assert not response.json().get("entry")
    everything = await stack.request("GET", "/search/Organization", token)
    assert everything.json().get("entry"), "the injection attempts changed nothing"


async def test_ml_123682_every_response_says_nosniff(stack: Stack) -> None:
    for path in ("/health", "/search/Organization", "/no-such-path"):
        response = await stack.request("GET", path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_ml_123682_an_unreachable_directory_is_a_clean_502(tmp_path: Path) -> None:
    async for stack in start_stack(tmp_path, upstream=f"http://127.0.0.1:{free_port()}"):
        response = await stack.request(
            "GET", "/search/Organization", stack.token(Kind.SEARCH, SEARCHER)
        )
        assert response.status_code == 502
        body = response.json()
        assert body["resourceType"] == "OperationOutcome"
        assert "Traceback" not in response.text
        assert "File " not in response.text
        # Issue 14 (finding 5): nothing of aiohttp's own message reaches the client.
        assert "Cannot connect" not in response.text
        assert "127.0.0.1" not in response.text
        assert "could not reach the FHIR-Directory" in body["issue"][0]["diagnostics"]


async def test_ml_123682_oversized_bodies_are_refused(stack: Stack) -> None:
    token = stack.token(Kind.OWNER, "1-2.58.00000040")
    response = await stack.request(
        "POST",
        "/owner/Endpoint",
        token,
        content=b"{" + b" " * (17 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 413


async def test_a_duplicated_authorization_header_is_refused_not_guessed(stack: Stack) -> None:
    """Issue 14: a security header given twice is refused (single_header), on every face."""
    token = stack.token(Kind.SEARCH, SEARCHER)
    twice = [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")]
    for path in ("/search/Organization", "/owner/Organization", "/ti-provider-authenticate"):
        response = await stack.client.get(stack.url + path, headers=twice)
        assert response.status_code == 400, (path, response.text)
        assert "Authorization given 2 times" in response.text
    openid = [("X-Matrix-OpenID-Token", "a"), ("X-Matrix-OpenID-Token", "b")]
    response = await stack.client.get(
        stack.url + "/tim-authenticate", params={"mxId": "hs1.example"}, headers=openid
    )
    assert response.status_code == 400, response.text
