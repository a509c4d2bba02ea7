"""Every way the IDP refuses a request, and how it says so.

Before the redirect URI is trusted an error is an HTML page; after, a redirect back to the
client with ``error``, ``error_description`` and ``state``; at ``/token`` an OAuth JSON error.
"""

from __future__ import annotations

import httpx
import pytest

from tests.idp.conftest import CLIENT, REDIRECT, Idp, request_id


def _redirect_error(response: httpx.Response) -> httpx.QueryParams:
    assert response.status_code == 302, response.text
    location = httpx.URL(response.headers["location"])
    assert str(location.copy_with(query=None)) == REDIRECT
    assert "code" not in location.params
    return location.params


def _oauth_error(response: httpx.Response, status: int, error: str, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert words in body["error_description"]


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        ({"code_challenge": None}, "invalid_request", "PKCE is required"),
        ({"code_challenge_method": None}, "invalid_request", "must be 'S256'"),
        ({"code_challenge_method": "plain"}, "invalid_request", "must be 'S256'"),
        ({"code_challenge": "short"}, "invalid_request", "base64url SHA-256"),
        ({"response_type": "token"}, "unsupported_response_type", "'code'"),
        ({"scope": "ti-messenger"}, "invalid_scope", "'openid'"),
        ({"scope": "openid admin"}, "invalid_scope", "'admin'"),
    ],
)
async def test_bad_authorization_request_redirects_an_error_with_state(
    idp: Idp, overrides: dict[str, str | None], error: str, words: str
) -> None:
    for response in (
        await idp.http.get(idp.url + "/auth", params=idp.auth_params(**overrides)),
        await idp.http.post(
            idp.url + "/auth", data={**idp.auth_params(**overrides), "card": "klinikum-nord"}
        ),
    ):
        query = _redirect_error(response)
        assert query["error"] == error
        assert words in query["error_description"]
        assert query["state"] == "state-123"


async def test_missing_state_is_refused_by_redirect(idp: Idp) -> None:
    query = _redirect_error(await idp.page(state=None))
    assert query["error"] == "invalid_request"
    assert "state" not in query


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"client_id": "intruder"}, "client_id &#39;intruder&#39; is unknown"),
        ({"client_id": None}, "client_id is missing"),
        ({"redirect_uri": "https://evil.example/steal"}, "is not registered"),
        ({"redirect_uri": REDIRECT + "/"}, "is not registered"),
        ({"redirect_uri": None}, "redirect_uri is missing"),
    ],
)
async def test_untrusted_client_or_redirect_gets_an_error_page_not_a_redirect(
    idp: Idp, overrides: dict[str, str | None], words: str
) -> None:
    response = await idp.page(**overrides)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert words in response.text


async def test_repeated_parameter_is_refused(idp: Idp) -> None:
    params: list[tuple[str, str | int | float | bool | None]] = [
        *idp.auth_params().items(),
        ("redirect_uri", "https://evil.example/"),
    ]
    response = await idp.http.get(idp.url + "/auth", params=params)
    assert response.status_code == 400
    assert "redirect_uri is given more than once" in response.text


async def test_request_id_is_single_use(idp: Idp) -> None:
    rid = request_id((await idp.page()).text)
    first = await idp.http.post(
        idp.url + "/auth", data={"request_id": rid, "card": "klinikum-nord"}
    )
    assert first.status_code == 302
    again = await idp.http.post(
        idp.url + "/auth", data={"request_id": rid, "card": "klinikum-nord"}
    )
    assert again.status_code == 400
    assert "unknown or has expired" in again.text


async def test_unknown_card_is_refused_by_redirect(idp: Idp) -> None:
    form = {**idp.auth_params(), "card": "no-such-card"}
    query = _redirect_error(await idp.http.post(idp.url + "/auth", data=form))
    assert query["error"] == "invalid_request"
    assert "no-such-card" in query["error_description"]


async def test_wrong_verifier_is_invalid_grant(idp: Idp) -> None:
    code = await idp.choose()
    response = await idp.token(code, code_verifier="x" * 43)
    _oauth_error(response, 400, "invalid_grant", "code_verifier does not match")


async def test_missing_verifier_is_invalid_request(idp: Idp) -> None:
    response = await idp.token(await idp.choose(), code_verifier=None)
    _oauth_error(response, 400, "invalid_request", "code_verifier is missing")


async def test_code_is_single_use(idp: Idp) -> None:
    code = await idp.choose()
    assert (await idp.token(code)).status_code == 200
    _oauth_error(await idp.token(code), 400, "invalid_grant", "already used")


async def test_a_failed_redemption_uses_the_code_up(idp: Idp) -> None:
    code = await idp.choose()
    await idp.token(code, code_verifier="x" * 43)
    _oauth_error(await idp.token(code), 400, "invalid_grant", "already used")


async def test_expired_code_is_invalid_grant(idp: Idp) -> None:
    code = await idp.choose()
    idp.clock.now += 61
    _oauth_error(await idp.token(code), 400, "invalid_grant", "has expired")


async def test_unknown_code_is_invalid_grant(idp: Idp) -> None:
    _oauth_error(await idp.token("made-up"), 400, "invalid_grant", "unknown")


async def test_wrong_redirect_uri_at_token_is_invalid_grant(idp: Idp) -> None:
    response = await idp.token(await idp.choose(), redirect_uri="https://rp.example/other")
    _oauth_error(response, 400, "invalid_grant", "redirect_uri does not match")


async def test_unknown_client_at_token_is_invalid_client(idp: Idp) -> None:
    code = await idp.choose()
    response = await idp.http.post(
        idp.url + "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=("intruder", "x"),
    )
    _oauth_error(response, 401, "invalid_client", "'intruder' is unknown")
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_wrong_or_missing_secret_is_invalid_client(idp: Idp) -> None:
    code = await idp.choose()
    wrong = await idp.http.post(
        idp.url + "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(CLIENT, "wrong"),
    )
    _oauth_error(wrong, 401, "invalid_client", "secret is wrong")
    missing = await idp.token(code, client_id=CLIENT)
    _oauth_error(missing, 401, "invalid_client", "must authenticate")
    # Failed client authentication does not use the code up.
    assert (await idp.token(code)).status_code == 200


async def test_code_of_another_client_is_invalid_grant(idp: Idp) -> None:
    code = await idp.choose(client_id="public-app")
    _oauth_error(await idp.token(code), 400, "invalid_grant", "another client")


async def test_other_grant_types_are_unsupported(idp: Idp) -> None:
    response = await idp.token("x", grant_type="password")
    _oauth_error(response, 400, "unsupported_grant_type", "'password'")


async def test_token_request_must_be_a_form(idp: Idp) -> None:
    response = await idp.http.post(idp.url + "/token", json={"grant_type": "authorization_code"})
    _oauth_error(response, 400, "invalid_request", "x-www-form-urlencoded")


async def test_unknown_path_is_an_oauth_json_404(idp: Idp) -> None:
    response = await idp.http.get(idp.url + "/userinfo")
    assert response.status_code == 404
    assert response.json()["error"] == "invalid_request"
    assert response.headers["x-content-type-options"] == "nosniff"
