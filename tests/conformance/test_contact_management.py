"""I_TiMessengerContactManagement 1.0.2 (gematik's yaml) against the real Messenger-Proxy.

The proxy runs from its composition root (:func:`timkit.proxy.service.running_proxy`) with
its real TLS inbound listener, a real SQLite database and a real OpenID validator; a small
homeserver stand-in answers Synapse's ``/_matrix/federation/v1/openid/userinfo`` and an RD
stand-in delivers the signed federation list. Every operation of the yaml gets
:data:`~tests.conformance.conftest.EXAMPLES` positive and as many negative examples
(schemathesis), each sent with one of several credentials (a valid token of this server,
none, a forged one, another scheme, a token of a foreign user, the generated one) and an
optional ``Mxid`` header; request bodies and path ids are mixed with valid contacts so the
success paths are exercised, not only the refusals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from aiohttp import web
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
from tests.proxy.stand_ins import FakeRd, proxy_config, proxy_keys, sign_list
from timkit.core.tls import server_ssl_context
from timkit.core.web import running_app
from timkit.proxy.contacts.api import PREFIX
from timkit.proxy.openid import USERINFO_PATH
from timkit.proxy.service import running_proxy

SERVER = "praxis.tim.test"
OTHER = "klinik.tim.test"
USERS = {
    "alice-token": f"@alice:{SERVER}",
    "bob-token": f"@bob:{SERVER}",
    "eve-token": f"@eve:{OTHER}",  # confirmed by the homeserver, but no user of this server
}
SCHEMA = schemathesis.openapi.from_path(OPENAPI / "TiMessengerContactManagement.yaml")
OPERATIONS = operations(SCHEMA)


@dataclass(frozen=True)
class Target:
    """The running proxy: its Freigabeliste URL and the CA file of its TLS certificate."""

    base_url: str
    ca_file: str


def _homeserver() -> web.Application:
    """Synapse's OpenID userinfo as the proxy asks it: ``{"sub"}`` or 401."""

    async def userinfo(request: web.Request) -> web.Response:
        sub = USERS.get(request.query.get("access_token", ""))
        if sub is None:
            return web.json_response(
                {"errcode": "M_UNKNOWN_TOKEN", "error": "Access token unknown or expired"},
                status=401,
            )
        return web.json_response({"sub": sub})

    app = web.Application()
    app.router.add_get(USERINFO_PATH, userinfo)
    return app


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    keys = proxy_keys(tmp_path_factory.mktemp("contacts"), SERVER)
    rd = FakeRd()
    rd.jws, rd.version = sign_list(keys.pki, 1, [SERVER, OTHER]), 1
    servers = BackgroundLoop()
    try:
        rd_tls = server_ssl_context(keys.rd_tls)
        rd_runner = servers.enter(running_app(rd.app(), "127.0.0.1", 0, rd_tls))
        homeserver = servers.enter(running_app(_homeserver(), "127.0.0.1", 0))
        config = proxy_config(
            keys,
            SERVER,
            f"https://127.0.0.1:{rd_runner.addresses[0][1]}",
            f"http://127.0.0.1:{homeserver.addresses[0][1]}",
            contacts={"max_contacts": 50},
        )
        proxy = servers.enter(running_proxy(config))
        yield Target(f"https://127.0.0.1:{proxy.inbound_port}{PREFIX}", str(keys.pki.ca_cert_path))
    finally:
        servers.close()


# -- what is sent besides schemathesis's own data ------------------------------------------

CONTACT_IDS = [f"@c{n}:{OTHER}" for n in range(8)] + [f"@C0:{OTHER.upper()}", f"@bob:{SERVER}"]
"""A small pool, so creates, reads, updates and deletes meet each other's contacts."""

_timestamps = st.integers(min_value=0, max_value=2**63 - 1) | st.integers(0, 2_000_000_000)


@st.composite
def valid_contacts(draw: st.DrawFn) -> dict[str, Any]:
    """A ``Contact`` the API must accept (``end`` absent, null or not before ``start``)."""
    start = draw(_timestamps)
    settings: dict[str, Any] = {"start": start}
    end = draw(st.none() | st.integers(start, 2**63 - 1) | st.just("absent"))
    if end != "absent":
        settings["end"] = end
    return {
        "displayName": draw(st.text(max_size=40)),
        "mxid": draw(st.sampled_from(CONTACT_IDS)),
        "inviteSettings": settings,
    }


VALID = "Bearer alice-token"
CREDENTIALS = [
    VALID,  # first: Hypothesis leans towards the first choice, and most calls should get in
    VALID,
    VALID,
    "Bearer bob-token",
    "bearer alice-token",
    None,
    "Bearer forged-token",
    "Bearer ",
    "Basic YWxpY2U6c2VjcmV0",
    "Bearer eve-token",  # a user of another server
    "generated",  # whatever schemathesis made
]
"""Credentials sent: valid ones, none, forged, another scheme, a foreign user's token."""
MXID_HEADERS = [None, None, f"@alice:{SERVER}", f"@ALICE:{SERVER}", f"@bob:{SERVER}", "x"]
"""``Mxid`` headers: absent, the caller (any case of the server name), another user, garbage."""


Sent = tuple[Case[Any], dict[str, str]]
"""A case and the headers sent on top of its own (credentials schemathesis did not make)."""


def _cases(operation: Any, mode: GenerationMode) -> st.SearchStrategy[Sent]:
    """Schemathesis's cases of ``mode``, with credentials, Mxid header and data mixed in.

    Credentials given explicitly (not generated) are passed as extra headers, so
    schemathesis's ``ignored_auth`` check knows them for valid and probes the operation
    without them and with invalid ones.
    """

    @st.composite
    def cases(draw: st.DrawFn) -> Sent:
        case: Case[Any] = draw(operation.as_strategy(mode))
        extra: dict[str, str] = {}
        credential = draw(st.sampled_from(CREDENTIALS))
        if credential != "generated" and case.headers:
            case.headers = CaseInsensitiveDict(
                {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
            )
        if credential not in (None, "generated"):
            extra["Authorization"] = credential
        mxid_header = draw(st.sampled_from(MXID_HEADERS))
        if mxid_header is not None:
            extra["Mxid"] = mxid_header
        if mode is GenerationMode.POSITIVE and draw(st.booleans()):
            if operation.body:
                case.body = draw(valid_contacts())
            if "mxid" in (case.path_parameters or {}):
                case.path_parameters = {"mxid": draw(st.sampled_from(CONTACT_IDS))}
        return case, extra

    return cases()


def _error_body(response: schemathesis.Response) -> None:
    """Every error is the yaml's ``Error`` as JSON (the schema check sees only documented ones)."""
    if response.status_code >= 400 and response.content:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/json"), (content_type, response.text)
        body = response.json()
        assert set(body) == {"errorCode", "errorMessage"}, body


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_contact_management_conforms_to_its_yaml(
    target: Target, operation: Any, mode: GenerationMode
) -> None:
    """No 5xx, nothing outside the yaml, authentication enforced, for every operation."""
    http = session(target.ca_file)

    def call(sent: Sent) -> None:
        case, headers = sent
        response = case.call_and_validate(
            base_url=target.base_url,
            session=http,
            headers=headers,
            checks=NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else CHECKS,
            verify=target.ca_file,
        )
        _error_body(response)

    with http:
        run_operation(_cases(operation, mode), call)
