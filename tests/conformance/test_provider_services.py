"""I_VZD_TIM_Provider_Services 1.4.0 (gematik's yaml) against the real FHIR-Proxy.

The FHIR-Proxy and the FHIR-Directory behind it (api-vzd examples loaded) run in-process on
free ports (:func:`tests.fhirproxy.conftest.start_stack`: real apps, real
databases, real sockets). Provider A gets its provider-accesstoken the way a TI-M provider
does (``POST /token`` with client credentials, then ``GET /ti-provider-authenticate``);
provider B owns a domain A must not see or touch. Every operation gets
:data:`~tests.conformance.conftest.EXAMPLES` positive and as many negative examples, each
sent with A's token, B's token, none, a forged one, a token of another kind (search) or the
generated one; bodies, path domains and query values are mixed with valid ones so the
success paths (add, read, update, delete, list, whereIs) are exercised too.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, GenerationMode

from tests.conformance.conftest import (
    CHECKS,
    NEGATIVE_CHECKS,
    OPENAPI,
    BackgroundLoop,
    operations,
    run_operation,
    session,
)
from tests.fhirproxy.conftest import Stack, start_stack
from timkit.fhirproxy.api.provider_services_routes import BASE
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.storage.domains import Domain, DomainStore

SCHEMA = schemathesis.openapi.from_path(OPENAPI / "I_VZD_TIM_Provider_Services.yaml")
OPERATIONS = operations(SCHEMA)
ACTIVE_TID = "9-2.58.00000040"  # Organization-OrganizationExample001, active
B_DOMAIN = "provider-b.tim.test"
QUERY_PARAMETERS = frozenset({"version", "sigAlg", "mxid", "domain"})
"""Every query parameter the yaml declares."""


@dataclass(frozen=True)
class Target:
    """The running FHIR-Proxy: base URL of the provider API and the credentials sent."""

    base_url: str
    credentials: list[str | None]


def _provider_token(url: str, client_id: str, secret: str) -> str:
    """A provider-accesstoken as a provider gets one: ``/token``, ``/ti-provider-authenticate``."""
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    issued = requests.post(
        url + "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=30,
    )
    assert issued.status_code == 200, issued.text
    exchanged = requests.get(
        url + "/ti-provider-authenticate",
        headers={"Authorization": f"Bearer {issued.json()['access_token']}"},
        timeout=30,
    )
    assert exchanged.status_code == 200, exchanged.text
    return str(exchanged.json()["access_token"])


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("provider")
    servers = BackgroundLoop()
    try:
        stack: Stack = servers.enter(contextlib.asynccontextmanager(start_stack)(tmp))
        secret_a = stack.add_provider("provider-a", "Provider A")
        secret_b = stack.add_provider("provider-b", "Provider B")
        with stack.ctx.db.write() as tx:
            DomainStore.insert(tx, Domain(B_DOMAIN, ACTIVE_TID, tim_anbieter="provider-b"))
        token_a = _provider_token(stack.url, "provider-a", secret_a)
        token_b = _provider_token(stack.url, "provider-b", secret_b)
        search = stack.token(Kind.SEARCH, "matrix:u/alice:praxis.tim.test")
        credentials: list[str | None] = [
            f"Bearer {token_a}",  # first: Hypothesis leans towards it; most calls get in
            f"Bearer {token_a}",
            f"Bearer {token_a}",
            f"Bearer {token_b}",
            None,
            "Bearer forged.token.value",
            f"Bearer {search}",  # a valid token of another kind
            f"Basic {base64.b64encode(b'provider-a:' + secret_a.encode()).decode()}",
            "generated",
        ]
        yield Target(stack.url + BASE, credentials)
    finally:
        servers.close()


DOMAINS = [f"d{n}.tim.test" for n in range(6)] + ["D0.TIM.TEST", B_DOMAIN, "no-such.tim.test"]
"""A small pool, so adds, reads, updates and deletes meet each other's domains."""
MXIDS = [
    "matrix:u/SystemsEngineering:tim.gematik.de",
    "@SystemsEngineering:tim.gematik.de",
    "matrix:user/SystemsEngineering:tim.gematik.de",
    "matrix:u/nobody:tim.gematik.de",
]


@st.composite
def valid_domains(draw: st.DrawFn, name: str | None = None) -> dict[str, Any]:
    """A ``Domain`` body the API may accept (an active TelematikID, a known one or not)."""
    body: dict[str, Any] = {
        "domain": name or draw(st.sampled_from(DOMAINS)),
        "telematikID": draw(st.sampled_from([ACTIVE_TID, ACTIVE_TID, "9-unknown-0001"])),
        "isInsurance": draw(st.booleans()),
    }
    if body["isInsurance"] and draw(st.booleans()):
        body["ik"] = draw(st.lists(st.from_regex(r"\A[0-9]{9}\Z"), min_size=1, max_size=2))
    if draw(st.booleans()):
        body["redirectDomains"] = draw(st.lists(st.sampled_from(DOMAINS), max_size=2))
    return body


Sent = tuple[Case[Any], dict[str, str]]
"""A case and the headers sent on top of its own (credentials schemathesis did not make)."""


def _cases(operation: Any, mode: GenerationMode, target: Target) -> st.SearchStrategy[Sent]:
    """Schemathesis's cases of ``mode`` with credentials and valid values mixed in."""

    @st.composite
    def cases(draw: st.DrawFn) -> Sent:
        case: Case[Any] = draw(operation.as_strategy(mode))
        extra: dict[str, str] = {}
        credential = draw(st.sampled_from(target.credentials))
        if credential != "generated" and case.headers:
            case.headers = CaseInsensitiveDict(
                {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
            )
        if credential not in (None, "generated"):
            extra["Authorization"] = credential
        if mode is GenerationMode.POSITIVE and draw(st.booleans()):
            path = dict(case.path_parameters or {})
            if "domain" in path:
                path["domain"] = draw(st.sampled_from(DOMAINS))
                case.path_parameters = path
            if operation.body:
                same = path.get("domain") if draw(st.booleans()) else None
                case.body = draw(valid_domains(same))
            query = dict(case.query or {})
            if "domain" in query or operation.label == "GET /federation":
                query["domain"] = draw(st.sampled_from(DOMAINS))
            if "mxid" in query or operation.label == "GET /localization":
                query["mxid"] = draw(st.sampled_from(MXIDS))
            if query and draw(st.integers(0, 9)) == 0:  # one parameter given twice
                name = draw(st.sampled_from(sorted(query)))
                query[name] = [query[name], draw(st.sampled_from([*DOMAINS, *MXIDS, "0"]))]
            case.query = query
        return case, extra

    return cases()


def _repeated_refused(case: Case[Any], response: schemathesis.Response) -> None:
    """A declared query parameter given twice could be read as either value: it must be a 400
    (undeclared ones are ignored, repeated or not)."""
    repeated = [
        name
        for name, value in (case.query or {}).items()
        if name in QUERY_PARAMETERS and isinstance(value, list) and len(value) > 1
    ]
    if repeated and response.status_code not in (400, 401, 403):
        pytest.fail(f"{repeated} given twice, answered {response.status_code}: {response.text}")


def _error_body(response: schemathesis.Response) -> None:
    """Every error is the yaml's ``Error`` as JSON, with a message."""
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/json"), (content_type, response.text)
        body = response.json()
        assert set(body) <= {"message", "errors"}, body
        assert isinstance(body.get("message"), str), body


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_provider_services_conform_to_their_yaml(
    target: Target, operation: Any, mode: GenerationMode
) -> None:
    """No 5xx, nothing outside the yaml, the provider token enforced, for every operation."""
    http = session()

    def call(sent: Sent) -> None:
        case, headers = sent
        response = case.call_and_validate(
            base_url=target.base_url,
            session=http,
            headers=headers,
            checks=NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else CHECKS,
        )
        _error_body(response)
        _repeated_refused(case, response)

    with http:
        run_operation(_cases(operation, mode, target), call)
