"""The HBA sign-in's hop checks and card choice, and the Endpoint the SDK publishes.

The hop checks run against a rogue directory (a real HTTP server on loopback) whose
``/owner-authenticate`` redirects where it should not: the SDK stops before anything is
sent there. The card form is the IDP stand-in's own page.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from timkit.client.hba import (
    INCONSISTENT_VISIBILITY,
    OwnerToken,
    _card_form,
    _same_place,
    _subject,
    owner_login_hba,
    tim_endpoint,
)
from timkit.core.errors import TimkitError
from timkit.core.fhir import CONNECTION_TYPE, PAYLOAD_TYPE
from timkit.core.process import free_port
from timkit.idp.cards import load_cards
from timkit.idp.pages import selection_page

SIGNIN = "https://127.0.0.1:8443/signin-gematik-idp-dienst"


def test_the_card_form_of_the_idp_stand_in_page_is_found() -> None:
    cards = load_cards(None)
    hba = next(c for c in cards if c.type == "HBA")
    page = selection_page("de", "req-123", "fhir-proxy", ("openid",), cards)
    assert _card_form(page, hba.id) == ("/auth", {"request_id": "req-123", "card": hba.id})
    with pytest.raises(TimkitError) as unknown:
        _card_form(page, "hba-someone-else")
    assert unknown.value.status == 404
    assert hba.id in unknown.value.message
    with pytest.raises(TimkitError) as no_form:
        _card_form("<html><p>Wartungsarbeiten</p></html>", hba.id)
    assert (no_form.value.status, no_form.value.requirement) == (502, "ML-123873")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8443/signin-gematik-idp-dienst?code=x&state=y",
        "https://127.0.0.1:8443/signin-gematik-idp-dienst",
    ],
)
def test_the_own_signin_url_is_the_same_place(url: str) -> None:
    assert _same_place(url, SIGNIN)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8443/signin-gematik-idp-dienst",
        "https://127.0.0.1:8444/signin-gematik-idp-dienst",
        "https://127.0.0.2:8443/signin-gematik-idp-dienst",
        "https://127.0.0.1:8443@evil.test/signin-gematik-idp-dienst",
        "https://evil.test/signin-gematik-idp-dienst#https://127.0.0.1:8443",
        "https://127.0.0.1:8443/signin-gematik-idp-dienst/../evil",
        "https://127.0.0.1:8443/signin-gematik-idp-dienst%2F..%2Fevil",
        "https://127.0.0.1:8443/SIGNIN-gematik-idp-dienst",
        "https://[::1:8443/signin-gematik-idp-dienst",
        "",
    ],
)
def test_any_other_place_is_not(url: str) -> None:
    assert not _same_place(url, SIGNIN)


def _jwt(claims: dict[str, object]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln"


def test_the_owner_token_names_its_telematik_id() -> None:
    assert _subject(_jwt({"sub": "1-1-ARZT-DEMO01"})) == "1-1-ARZT-DEMO01"
    for bad in ("opaque", _jwt({"sub": ""}), _jwt({"aud": "x"}), "a.%%%.c"):
        with pytest.raises(TimkitError):
            _subject(bad)
    token = OwnerToken("t", "1-1", expires_at=1000.0)
    assert token.fresh(now=900.0)
    assert not token.fresh(now=980.0)


def test_the_published_endpoint_is_a_ti_m_chat_endpoint() -> None:
    endpoint = tim_endpoint("matrix:u/clara:praxis.tim.test", "Dr. Clara Sonnenschein")
    assert endpoint == {
        "resourceType": "Endpoint",
        "status": "active",
        "connectionType": {"system": CONNECTION_TYPE, "code": "tim"},
        "payloadType": [{"coding": [{"system": PAYLOAD_TYPE, "code": "tim-chat"}]}],
        "address": "matrix:u/clara:praxis.tim.test",
        "name": "Dr. Clara Sonnenschein",
    }
    assert "name" not in tim_endpoint("matrix:u/clara:praxis.tim.test", None)


def test_the_visibility_hint_is_german_and_names_the_org_admin() -> None:
    hint = INCONSISTENT_VISIBILITY.format(mxid="@c:p.tim.test", where="Praxis")
    assert "Administrator Ihrer Organisation" in hint
    assert "@c:p.tim.test" in hint


@pytest.fixture
async def rogue_directory() -> AsyncIterator[tuple[str, Callable[[str], None]]]:
    """A directory whose ``/owner-authenticate`` redirects to a location the test sets."""
    where: list[str] = [""]

    async def owner_authenticate(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": where[0]})

    app = web.Application()
    app.router.add_get("/owner-authenticate", owner_authenticate)
    server = TestServer(app)
    await server.start_server()

    def redirect_to(location: str) -> None:
        where[0] = location

    yield str(server.make_url("")).rstrip("/"), redirect_to
    await server.close()


def _nowhere() -> str:
    """An https origin on loopback where nothing listens (reaching it would be a 502)."""
    return f"https://127.0.0.1:{free_port()}"


async def test_a_redirect_to_plain_http_is_not_followed(
    rogue_directory: tuple[str, Callable[[str], None]],
) -> None:
    url, redirect_to = rogue_directory
    redirect_to("http://127.0.0.1:1/auth?redirect_uri=" + url + "/signin-gematik-idp-dienst")
    await _refused(url, "redirected to http://127.0.0.1:1")


async def test_a_redirect_to_another_idp_than_the_one_asked_for_is_not_followed(
    rogue_directory: tuple[str, Callable[[str], None]],
) -> None:
    url, redirect_to = rogue_directory
    redirect_to(f"{_nowhere()}/auth?redirect_uri={url}/signin-gematik-idp-dienst")
    await _refused(url, "redirected to https://127.0.0.1", idp="https://idp.example.test")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.test/signin-gematik-idp-dienst",
        "{url}/signin-gematik-idp-dienst/../steal",
        "{url}.evil.test/signin-gematik-idp-dienst",
        "",
    ],
)
async def test_a_sign_in_whose_code_would_go_elsewhere_is_stopped_before_the_idp(
    rogue_directory: tuple[str, Callable[[str], None]], redirect_uri: str
) -> None:
    """The authorization code must only come back to the directory the caller named."""
    url, redirect_to = rogue_directory
    target = httpx.URL(f"{_nowhere()}/auth").copy_merge_params(
        {"redirect_uri": redirect_uri.format(url=url), "state": "s"}
    )
    redirect_to(str(target))
    await _refused(url, "another redirect URI")


async def test_a_redirect_without_location_is_refused(
    rogue_directory: tuple[str, Callable[[str], None]],
) -> None:
    url, redirect_to = rogue_directory
    redirect_to("/auth")
    await _refused(url, "relative or missing location")


async def _refused(url: str, says: str, idp: str | None = None) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        with pytest.raises(TimkitError) as refused:
            await owner_login_hba(http, url, "hba-dr-demo", idp=idp)
    assert (refused.value.status, refused.value.requirement) == (502, "ML-123873")
    assert says in refused.value.message
