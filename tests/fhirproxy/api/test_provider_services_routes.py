"""``/tim-provider-services`` through a real FHIR-Proxy in front of a real FHIR-Directory."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest

from tests.fhirproxy.conftest import EXAMPLES, Stack, start_stack
from tests.fhirproxy.handlers.test_signed_list import verify_bp256r1, verify_es256
from timkit.core.tls import LocalPKI
from timkit.fhirproxy.auth.access_tokens import Kind

BASE = "/tim-provider-services"
ACTIVE_TID = "9-2.58.00000040"  # Organization-OrganizationExample001, active
INACTIVE_TID = "9-inactive-0001"


def _example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((EXAMPLES / f"{name}.json").read_bytes())
    return document


async def _put(stack: Stack, resource: dict[str, Any]) -> None:
    url = f"{stack.directory_url}/{resource['resourceType']}/{resource['id']}"
    response = await stack.client.put(
        url, content=orjson.dumps(resource), headers={"Content-Type": "application/fhir+json"}
    )
    assert response.status_code in (200, 201), response.text


async def _organization(stack: Stack, rid: str, tid: str, *, active: bool, **extra: Any) -> None:
    org = copy.deepcopy(_example("Organization-OrganizationExample"))
    org.update(id=rid, active=active, **extra)
    org["identifier"] = [{"system": "https://gematik.de/fhir/sid/telematik-id", "value": tid}]
    await _put(stack, org)


async def _endpoint(stack: Stack, rid: str, address: str) -> None:
    endpoint = copy.deepcopy(_example("Endpoint-OrganizationExample001-Endpoint-TIM"))
    endpoint.update(id=rid, address=address)
    await _put(stack, endpoint)


def _domain(name: str, tid: str = ACTIVE_TID, **extra: Any) -> dict[str, Any]:
    return {"domain": name, "telematikID": tid, "isInsurance": False, **extra}


class Provider:
    """A registered provider talking to one stack."""

    def __init__(self, stack: Stack, client_id: str) -> None:
        stack.add_provider(client_id, client_id)
        self.stack = stack
        self.client_id = client_id
        self.token = stack.token(Kind.PROVIDER, client_id)

    async def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.stack.request(method, BASE + path, self.token, **kwargs)


@pytest.fixture
def provider_a(stack: Stack) -> Provider:
    """Provider A on the stack."""
    return Provider(stack, "provider-a")


@pytest.fixture
def provider_b(stack: Stack) -> Provider:
    """Provider B on the stack."""
    return Provider(stack, "provider-b")


ROUTES = [
    ("GET", "/FederationList/federationList.jws"),
    ("GET", "/localization?mxid=matrix:u/a:b.example.de"),
    ("POST", "/federation"),
    ("GET", "/federation"),
    ("PUT", "/federation/a.example.de"),
    ("DELETE", "/federation/a.example.de"),
    ("GET", "/federationCheck"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_ml_123881_every_route_needs_a_provider_token(
    stack: Stack, method: str, path: str
) -> None:
    anonymous = await stack.request(method, BASE + path)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert "ML-123881" in anonymous.json()["message"]
    assert anonymous.json()["errors"] == []
    forged = await stack.request(method, BASE + path, "eyJhbGciOiJub25lIn0.e30.")
    assert forged.status_code == 401
    search = stack.token(Kind.SEARCH, "matrix:u/a:b.example.de")
    wrong_kind = await stack.request(method, BASE + path, search)
    assert wrong_kind.status_code == 403
    assert "ML-123881" in wrong_kind.json()["message"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_ml_123881_a_repeated_authorization_header_is_refused(
    provider_a: Provider, provider_b: Provider, stack: Stack, method: str, path: str
) -> None:
    """Two tokens in one request are 401 whatever their order, never the first one's answer
    (found by the conformance run's probes, issue 14)."""
    for first, second in ((provider_a, provider_b), (provider_b, provider_a)):
        headers = httpx.Headers(
            [
                ("Authorization", f"Bearer {first.token}"),
                ("Authorization", f"Bearer {second.token}"),
            ]
        )
        response = await stack.client.request(method, stack.url + BASE + path, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization given 2 times" in response.json()["message"]
        assert "ML-123881" in response.json()["message"]
    assert not stack.ctx.domains.contains("a.example.de")


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/FederationList/federationList.jws?version=1&version=0", "version"),
        ("/FederationList/federationList.jws?sigAlg=ES256&sigAlg=BP256R1", "sigAlg"),
        ("/localization?mxid=matrix:u/a:b.example.de&mxid=matrix:u/c:d.example.de", "mxid"),
        ("/federation?domain=a.example.de&domain=b.example.de", "domain"),
    ],
)
async def test_af_10048_a_repeated_query_parameter_is_refused(
    provider_a: Provider, path: str, parameter: str
) -> None:
    """A parameter given twice could be read as either value: 400 naming it (issue 14)."""
    response = await provider_a("GET", path)
    assert response.status_code == 400, response.text
    assert f"query parameter {parameter} given 2 times" in response.json()["message"]
    assert response.json()["errors"][0]["attributeName"] == parameter


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize(
    "raw_domain",
    ["praxis.example.de%2F", "praxis.example.de:443", "%E2%80%8Bpraxis.example.de", "a%20b.de"],
)
async def test_af_10048_a_path_domain_that_is_no_dns_name_is_400(
    provider_a: Provider, stack: Stack, method: str, raw_domain: str
) -> None:
    """``{domain}`` is checked like the body's ``domain`` before any look-up (issue 14)."""
    added = await provider_a("POST", "/federation", json=_domain("praxis.example.de"))
    assert added.status_code == 200, added.text
    url = httpx.URL(stack.url + BASE + "/federation/" + raw_domain)
    response = await stack.client.request(
        method,
        url,
        json=_domain("praxis.example.de"),
        headers={"Authorization": f"Bearer {provider_a.token}"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["attributeName"] == "domain"
    assert stack.ctx.domains.contains("praxis.example.de")


async def test_info_needs_no_token(stack: Stack) -> None:
    for path in (BASE, BASE + "/"):
        response = await stack.request("GET", path)
        assert response.status_code == 200
        assert response.json()["title"] == "I_VZD_TIM_Provider_Services"
        assert response.json()["version"] == "1.4.0"


async def test_af_10048_domain_life_cycle(provider_a: Provider, stack: Stack) -> None:
    added = await provider_a(
        "POST", "/federation", json=_domain("Praxis.Example.de", redirectDomains=["r.example.de"])
    )
    assert added.status_code == 200, added.text
    assert added.json() == {
        "domain": "praxis.example.de",
        "telematikID": ACTIVE_TID,
        "isInsurance": False,
        "timAnbieter": "provider-a",
        "redirectDomains": ["r.example.de"],
    }
    assert stack.ctx.domains.contains("praxis.example.de")
    listed = await provider_a("GET", "/federation")
    assert [d["domain"] for d in listed.json()] == ["praxis.example.de"]
    one = await provider_a("GET", "/federation?domain=praxis.example.de")
    assert one.json() == [added.json()]

    kk = _domain("praxis.example.de", isInsurance=True, ik=["108433248"])
    mismatch = await provider_a("PUT", "/federation/other.example.de", json=kk)
    assert mismatch.status_code == 404
    changed = await provider_a("PUT", "/federation/praxis.example.de", json=kk)
    assert changed.status_code == 200, changed.text
    assert changed.json()["ik"] == ["108433248"]
    wrong_body = await provider_a(
        "PUT", "/federation/praxis.example.de", json=_domain("x.example.de")
    )
    assert wrong_body.status_code == 400
    assert wrong_body.json()["errors"][0]["attributeName"] == "domain"

    deleted = await provider_a("DELETE", "/federation/praxis.example.de")
    assert deleted.status_code == 204
    assert (await provider_a("GET", "/federation")).json() == []
    assert (await provider_a("DELETE", "/federation/praxis.example.de")).status_code == 404
    entries = [row for row in stack.ctx.audit.query(actor="provider:provider-a")]
    assert {e.status for e in entries} >= {200, 204, 400, 404}


async def test_af_10048_own_domains_only(provider_a: Provider, provider_b: Provider) -> None:
    assert (
        await provider_a("POST", "/federation", json=_domain("a.example.de"))
    ).status_code == 200
    assert (
        await provider_b("POST", "/federation", json=_domain("b.example.de"))
    ).status_code == 200
    assert [d["domain"] for d in (await provider_b("GET", "/federation")).json()] == [
        "b.example.de"
    ]
    assert (await provider_b("GET", "/federation?domain=a.example.de")).status_code == 403
    put = await provider_b("PUT", "/federation/a.example.de", json=_domain("a.example.de"))
    assert put.status_code == 403
    assert (await provider_b("DELETE", "/federation/a.example.de")).status_code == 403
    taken = await provider_b("POST", "/federation", json=_domain("A.example.de"))
    assert taken.status_code == 409
    assert (await provider_a("GET", "/federation?domain=a.example.de")).status_code == 200


async def test_af_10048_documented_rejections(
    provider_a: Provider, provider_b: Provider, stack: Stack
) -> None:
    await _organization(stack, "inactive-org", INACTIVE_TID, active=False)
    inactive = await provider_a("POST", "/federation", json=_domain("i.example.de", INACTIVE_TID))
    assert inactive.status_code == 400
    assert "not active" in inactive.json()["message"]
    assert inactive.json()["errors"][0]["attributeName"] == "telematikID"
    unknown = await provider_a("POST", "/federation", json=_domain("u.example.de", "1-unknown"))
    assert unknown.status_code == 400
    assert "no Organization" in unknown.json()["message"]

    invalid = await provider_a(
        "POST",
        "/federation",
        json={"domain": "no_domain", "telematikID": ACTIVE_TID, "isInsurance": True, "ik": ["1"]},
    )
    assert invalid.status_code == 400
    assert {e["attributeName"] for e in invalid.json()["errors"]} == {"domain", "ik"}
    not_json = await provider_a("POST", "/federation", content=b"{")
    assert not_json.status_code == 400
    bad_query = await provider_a("GET", "/federation?domain=a..b")
    assert bad_query.status_code == 400

    kk = _domain("kk.example.de", isInsurance=True, ik=["108433248"])
    assert (await provider_a("POST", "/federation", json=kk)).status_code == 200
    ik_taken = await provider_b(
        "POST", "/federation", json={**kk, "domain": "kk2.example.de", "ik": [108433248]}
    )
    assert ik_taken.status_code == 409
    assert "108433248" in ik_taken.json()["message"]
    twice = {**kk, "domain": "kk3.example.de", "ik": ["104127692", "104127692"]}
    assert (await provider_b("POST", "/federation", json=twice)).status_code == 409
    insured_without_ik = _domain("kk4.example.de", isInsurance=True)
    assert (await provider_b("POST", "/federation", json=insured_without_ik)).status_code == 400


async def test_af_10048_unusable_bodies_are_named_in_the_error_schema(
    provider_a: Provider,
) -> None:
    """Deep nesting is named as such (not "not JSON"), in the provider API's own Error."""
    deep = await provider_a("POST", "/federation", content=b"[" * 20_000 + b"]" * 20_000)
    assert deep.status_code == 400
    assert deep.json()["message"] == (
        "the request body is JSON nested deeper than 1024 levels - see AF_10048"
    )
    assert deep.json()["errors"] == []
    latin1 = await provider_a("POST", "/federation", content=b'{"domain": "m\xfcller.de"}')
    assert latin1.status_code == 400
    assert "not UTF-8 (invalid byte at position 13)" in latin1.json()["message"]


async def test_af_10048_federation_check(provider_a: Provider, stack: Stack) -> None:
    tid = "9-soon-inactive"
    await _organization(stack, "soon-inactive", tid, active=True)
    assert (await provider_a("GET", "/federationCheck")).status_code == 204
    assert (
        await provider_a("POST", "/federation", json=_domain("a.example.de"))
    ).status_code == 200
    assert (
        await provider_a("POST", "/federation", json=_domain("s.example.de", tid))
    ).status_code == 200
    assert (await provider_a("GET", "/federationCheck")).status_code == 204
    await _organization(stack, "soon-inactive", tid, active=False)
    check = await provider_a("GET", "/federationCheck")
    assert check.status_code == 200
    assert [d["domain"] for d in check.json()["inactiveOrganizationDomains"]] == ["s.example.de"]


async def test_ml_123677_federation_list_download(
    provider_a: Provider, stack: Stack, tmp_path: Path
) -> None:
    first = await provider_a("GET", "/FederationList/federationList.jws")
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/octet-stream"
    assert (
        await provider_a("POST", "/federation", json=_domain("a.example.de"))
    ).status_code == 200

    ca, _ = LocalPKI(tmp_path / "pki").ensure_ca()
    bp = await provider_a("GET", "/FederationList/federationList.jws")
    verify_bp256r1(bp.content, ca)
    es = await provider_a("GET", "/FederationList/federationList.jws?sigAlg=ES256")
    payload = orjson.loads(verify_es256(es.content, ca))
    assert payload["version"] == 2
    assert [e["domain"] for e in payload["domainList"]] == ["a.example.de"]
    assert payload["domainList"][0]["timAnbieter"] == "provider-a"

    current = await provider_a("GET", "/FederationList/federationList.jws?version=2")
    assert current.status_code == 204
    newer_known = await provider_a("GET", "/FederationList/federationList.jws?version=7")
    assert newer_known.status_code == 204
    older = await provider_a("GET", "/FederationList/federationList.jws?version=1&sigAlg=ES256")
    assert older.status_code == 200
    assert older.content == es.content
    for query in ("version=abc", "version=-1", "sigAlg=RS256", "sigAlg=none"):
        bad = await provider_a("GET", f"/FederationList/federationList.jws?{query}")
        assert bad.status_code == 400, query
        assert bad.json()["errors"]


async def test_ml_123677_two_proxies_on_one_database_serve_the_same_list(
    stack: Stack, tmp_path: Path
) -> None:
    a = Provider(stack, "provider-a")
    # start_stack is an async generator; aclosing stops the second proxy even when a check fails
    stacks = cast(
        AsyncGenerator[Stack, None], start_stack(tmp_path, database=stack.ctx.config.database)
    )
    async with contextlib.aclosing(stacks):
        other = await anext(stacks)
        b_token = other.token(Kind.PROVIDER, "provider-a")
        assert (await a("POST", "/federation", json=_domain("a.example.de"))).status_code == 200
        path = BASE + "/FederationList/federationList.jws"
        from_a = await stack.request("GET", path, a.token)
        from_b = await other.request("GET", path, b_token)
        assert from_a.content == from_b.content
        added = await other.request(
            "POST", BASE + "/federation", b_token, json=_domain("b.example.de")
        )
        assert added.status_code == 200
        from_a = await stack.request("GET", path + "?sigAlg=ES256", a.token)
        from_b = await other.request("GET", path + "?sigAlg=ES256", b_token)
        assert from_a.content == from_b.content
        payload = orjson.loads(
            verify_es256(from_a.content, LocalPKI(tmp_path / "pki").ensure_ca()[0])
        )
        assert payload["version"] == 2


async def test_localization(provider_a: Provider, stack: Stack) -> None:
    await _endpoint(stack, "ep-org", "matrix:u/org:loc.example.de")
    await _organization(
        stack, "loc-org", ACTIVE_TID, active=True, endpoint=[{"reference": "Endpoint/ep-org"}]
    )
    await _endpoint(stack, "ep-pract", "matrix:u/pract:loc.example.de")
    role = copy.deepcopy(_example("PractitionerRole-PractitionerRoleExample"))
    role.update(id="loc-role", endpoint=[{"reference": "Endpoint/ep-pract"}])
    await _put(stack, role)
    await _endpoint(stack, "ep-alone", "matrix:u/alone:loc.example.de")

    async def where(mxid: str) -> httpx.Response:
        return await provider_a("GET", "/localization", params={"mxid": mxid})

    assert (await where("matrix:u/org:loc.example.de")).json() == "org"
    assert (await where("@org:loc.example.de")).json() == "org"
    assert (await where("matrix:u/pract:loc.example.de")).json() == "pract"
    both = "matrix:u/" + _example("Endpoint-PharmacyEndpointTIMExample")["address"][9:]
    assert (await where(both)).json() == "orgPract"
    assert (await where("matrix:u/alone:loc.example.de")).json() == "none"
    assert (await where("matrix:u/nobody:loc.example.de")).status_code == 404
    for bad in ("", "nobody", "matrix:u/nobody", "matrix:r/room:x.de", "@a b:x.de"):
        response = await where(bad)
        assert response.status_code == 400, bad
        assert response.json()["errors"][0]["attributeName"] == "mxid"
