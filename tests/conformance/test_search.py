"""The FHIR-Proxy's ``/search`` against timkit's OpenAPI description of it.

gematik publishes no OpenAPI for ``/search``; :mod:`tests.conformance.search_openapi`
derives one from the CapabilityStatement (checked here against the live one) and the
api-vzd search HOWTO. The FHIR-Proxy and the FHIR-Directory behind it (api-vzd examples plus
an Endpoint that is ``off``) run in-process over real sockets. Every operation gets
positive and negative examples, sent with a search-accesstoken of a non-insured and of an
insured user, none, a forged one, a provider token (another kind) or the generated one;
parameters are mixed with values that match the examples. Besides schemathesis's checks,
every answer must be FHIR JSON under ``application/fhir+json`` and must not show a hidden
Endpoint (not ``active``; ``hide-versicherte`` for an insured caller).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, GenerationMode

from tests.conformance.conftest import (
    CHECKS,
    EXAMPLES,
    BackgroundLoop,
    operations,
    run_operation,
    session,
)
from tests.conformance.search_openapi import (
    INCLUDES,
    REV_INCLUDES,
    SEARCH_PARAMETERS,
    search_openapi,
)
from tests.fhirproxy.conftest import EXAMPLES as VZD_EXAMPLES
from tests.fhirproxy.conftest import Stack, start_stack
from timkit.fhirproxy.auth.access_tokens import Kind

SCHEMA = schemathesis.openapi.from_dict(search_openapi())
OPERATIONS = operations(SCHEMA)
SEARCH_EXAMPLES = max(EXAMPLES // 3, 10)
"""Examples per operation and mode: a FHIR search costs the directory far more than a
contacts call, and 8 operations share the budget (50 at the default 150)."""

OFF_ENDPOINT = "conformance-off-endpoint"
HIDE_INSURED = "hide-versicherte"


def _example_ids() -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {t: [] for t in SEARCH_PARAMETERS}
    for path in sorted(VZD_EXAMPLES.glob("*.json")):
        resource = orjson.loads(path.read_bytes())
        if resource.get("resourceType") in ids:
            ids[resource["resourceType"]].append(resource["id"])
    ids["Endpoint"].append(OFF_ENDPOINT)
    return ids


IDS = _example_ids()


@dataclass(frozen=True)
class Target:
    """The running FHIR-Proxy and the credentials sent, named."""

    url: str
    credentials: list[tuple[str, str | None]]


def _off_endpoint() -> dict[str, Any]:
    endpoint: dict[str, Any] = orjson.loads(
        (VZD_EXAMPLES / "Endpoint-OrganizationExample001-Endpoint-TIM.json").read_bytes()
    )
    endpoint.update(id=OFF_ENDPOINT, status="off", address="matrix:u/off:tim.gematik.de")
    return endpoint


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("search")
    servers = BackgroundLoop()
    try:
        stack: Stack = servers.enter(contextlib.asynccontextmanager(start_stack)(tmp))
        put = servers.run(  # the stack's client knows the directory's own credentials
            stack.client.put(
                f"{stack.directory_url}/Endpoint/{OFF_ENDPOINT}",
                content=orjson.dumps(_off_endpoint()),
                headers={"Content-Type": "application/fhir+json"},
            )
        )
        assert put.status_code in (200, 201), put.text
        user = stack.token(Kind.SEARCH, "matrix:u/alice:praxis.tim.test")
        insured = stack.token(Kind.SEARCH, "matrix:u/ina:kasse.tim.test", isInsurance=True)
        stack.add_provider("provider-a", "Provider A")
        provider = stack.token(Kind.PROVIDER, "provider-a")
        credentials: list[tuple[str, str | None]] = [
            ("user", f"Bearer {user}"),  # first: Hypothesis leans towards it
            ("user", f"Bearer {user}"),
            ("insured", f"Bearer {insured}"),
            ("insured", f"Bearer {insured}"),
            ("none", None),
            ("forged", "Bearer forged.token.value"),
            ("provider", f"Bearer {provider}"),
            ("generated", None),
        ]
        yield Target(stack.url, credentials)
    finally:
        servers.close()


def test_the_description_matches_the_capability_statement(target: Target) -> None:
    """The derived OpenAPI names every type, search parameter and include /metadata does."""
    user = next(value for name, value in target.credentials if name == "user")
    assert user is not None
    response = httpx.get(
        target.url + "/search/metadata", headers={"Authorization": user}, timeout=30
    )
    assert response.status_code == 200, response.text
    resources = {r["type"]: r for r in response.json()["rest"][0]["resource"]}
    assert set(resources) == set(SEARCH_PARAMETERS)
    for name, resource in resources.items():
        assert [p["name"] for p in resource.get("searchParam", [])] == SEARCH_PARAMETERS[name]
        assert resource.get("searchInclude", []) == INCLUDES[name]
        assert resource.get("searchRevInclude", []) == REV_INCLUDES[name]


ENCODED_IDS = [
    f"{OFF_ENDPOINT}%2F_history",
    "OrganizationExample001%2F_history%2F1",
    "%2E%2E%2Fmetadata",
    "%01",
    "%20",
    "x%00",
    "%C3%A4",
    "%FF",
    "a%2Fb",
    "x%3Fy",
    "%252F",
]
"""Read ids sent as raw path segments (schemathesis would encode them again): encoded
slashes, dot segments, control characters, spaces, non-UTF-8 (issue 14's findings)."""

_VALUES: dict[str, list[str]] = {
    "name": ["Praxis", "Apotheke", "Klinik"],
    "identifier": ["https://gematik.de/fhir/sid/telematik-id|9-2.58.00000040", "9-2.58.00000040"],
    "address": ["matrix:u/SystemsEngineering:tim.gematik.de", "matrix:u/off:tim.gematik.de"],
    "status": ["active", "off"],
    "connection-type": ["tim", "https://gematik.de/fhir/directory/CodeSystem/EndpointDirectoryConnectionType|tim"],
    "_text": ["Praxis", "tim"],
    "address-city": ["Berlin", "Hamburg"],
}  # fmt: skip
"""Values that match the examples, mixed into generated searches."""

Sent = tuple[Case[Any], dict[str, str], str]
"""A case, the headers sent on top of its own and the name of the credential."""


def _cases(operation: Any, mode: GenerationMode, target: Target) -> st.SearchStrategy[Sent]:
    @st.composite
    def cases(draw: st.DrawFn) -> Sent:
        case: Case[Any] = draw(operation.as_strategy(mode))
        name, credential = draw(st.sampled_from(target.credentials))
        extra: dict[str, str] = {}
        if name != "generated" and case.headers:
            case.headers = CaseInsensitiveDict(
                {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
            )
        if credential is not None:
            extra["Authorization"] = credential
        if mode is GenerationMode.POSITIVE and draw(st.booleans()):
            path = dict(case.path_parameters or {})
            if "id" in path:
                path["id"] = draw(st.sampled_from(IDS[path["type"]] + ENCODED_IDS))
                case.path_parameters = path
            query = {k: v for k, v in (case.query or {}).items() if draw(st.booleans())}
            for parameter in draw(st.lists(st.sampled_from(sorted(_VALUES)), max_size=2)):
                if operation.path.endswith("}") or parameter not in _params(operation):
                    continue
                query[parameter] = draw(st.sampled_from(_VALUES[parameter]))
            case.query = query
        return case, extra, name

    return cases()


def _params(operation: Any) -> set[str]:
    resource_type = operation.path.rsplit("/", 1)[-1]
    return set(SEARCH_PARAMETERS.get(resource_type, []))


def _resources(body: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(body, dict):
        return
    if body.get("resourceType") == "Bundle":
        for entry in body.get("entry", []):
            yield from _resources(entry.get("resource"))
    else:
        yield body


def _fhir_and_nothing_hidden(response: schemathesis.Response, credential: str) -> None:
    """FHIR JSON under its media type; no Endpoint that is hidden from this caller."""
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/fhir+json"), (content_type, response.text)
    try:
        body = json.loads(response.content)
    except ValueError:
        pytest.fail(f"{response.status_code} body is not JSON: {response.text[:200]!r}")
    assert isinstance(body, dict), body
    assert "resourceType" in body, body
    for resource in _resources(body):
        kind, rid = resource.get("resourceType"), resource.get("id")
        if kind == "Endpoint" and resource.get("status") != "active":
            pytest.fail(f"Endpoint/{rid} is not active, so hidden, yet shown")
        insured = credential == "insured" and kind in ("Endpoint", "Organization")
        if insured and HIDE_INSURED in json.dumps(resource):
            pytest.fail(f"{kind}/{rid} is hidden from insured persons, yet shown")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_search_conforms_to_its_description(
    target: Target, operation: Any, mode: GenerationMode
) -> None:
    """No 5xx, FHIR JSON only, nothing hidden shown, the search token enforced."""
    http = session()

    def call(sent: Sent) -> None:
        case, headers, credential = sent
        response = case.call_and_validate(
            base_url=target.url, session=http, headers=headers, checks=CHECKS
        )
        _fhir_and_nothing_hidden(response, credential)

    with http:
        run_operation(_cases(operation, mode, target), call, max_examples=SEARCH_EXAMPLES)
