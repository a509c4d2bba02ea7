"""The authorization code flow with PKCE, end to end over TLS (its refusals: test_api.py)."""

from __future__ import annotations

import httpx
from joserfc import jwt as jose
from joserfc.jwk import KeySet
from jwcrypto import jwk

from tests.idp.conftest import CLIENT, PUBLIC, REDIRECT, Idp, MakeIdp, request_id
from timkit.core import jwt
from timkit.idp.tokens import at_hash, subject


def _redirect_query(response: httpx.Response) -> httpx.QueryParams:
    assert response.status_code == 302, response.text
    location = httpx.URL(response.headers["location"])
    assert str(location.copy_with(query=None)) == REDIRECT
    return location.params


async def test_browser_flow_issues_an_es256_id_token_that_verifies_against_the_jwks(
    idp: Idp,
) -> None:
    discovery = (await idp.http.get(idp.url + "/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == idp.url
    assert discovery["authorization_endpoint"] == idp.url + "/auth"
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["id_token_signing_alg_values_supported"] == ["ES256"]
    assert {"openid", "ti-messenger"} <= set(discovery["scopes_supported"])

    page = await idp.page()
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for text in ("Praxis Dr. Sonnenschein", "1-0944775149", "SMC-B", "HBA", "Clara Sonnenschein"):
        assert text in page.text
    chosen = await idp.http.post(
        idp.url + "/auth", data={"request_id": request_id(page.text), "card": "klinikum-nord"}
    )
    query = _redirect_query(chosen)
    assert query["state"] == "state-123"
    assert query["iss"] == idp.url

    response = await idp.token(query["code"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300

    jwks = (await discovery_get(idp, discovery["jwks_uri"])).json()
    assert jwks["keys"][0]["use"] == "sig"
    token = jose.decode(body["id_token"], KeySet.import_key_set(jwks), algorithms=["ES256"])
    assert token.header["kid"] == jwks["keys"][0]["kid"]
    jose.JWTClaimsRegistry(
        iss={"essential": True, "value": idp.url},
        aud={"essential": True, "value": CLIENT},
        nonce={"essential": True, "value": "nonce-456"},
        exp={"essential": True},
    ).validate(token.claims)
    claims = token.claims
    assert claims["idNummer"] == "1-0833107194"
    assert claims["professionOID"] == "1.2.276.0.76.4.53"
    assert claims["organizationName"] == "Klinikum Nord"
    assert claims["display_name"] == "Klinikum Nord"
    assert claims["acr"] == "gematik-ehealth-loa-high"
    assert claims["amr"] == ["mfa", "sc", "pin"]
    assert claims["sub"] == subject(idp.url, "1-0833107194")
    assert claims["exp"] - claims["iat"] == 300
    assert claims["auth_time"] == claims["iat"]
    assert claims["at_hash"] == at_hash(body["access_token"])
    assert "given_name" not in claims


async def discovery_get(idp: Idp, url: str) -> httpx.Response:
    response = await idp.http.get(url)
    assert response.status_code == 200
    return response


async def test_bp256r1_id_token_verifies_with_core_jwt_and_carries_hba_names(
    make_idp: MakeIdp,
) -> None:
    idp = await make_idp(signing="BP256R1")
    code = await idp.choose("dr-sonnenschein")
    body = (await idp.token(code)).json()
    [key] = (await idp.http.get(idp.url + "/jwks")).json()["keys"]
    assert key["crv"] == "BP-256"
    assert key["alg"] == "BP256R1"
    claims = jwt.verify(
        body["id_token"],
        jwk.JWK(**key),
        algs=["BP256R1"],
        issuer=idp.url,
        audience=CLIENT,
        required=("iss", "sub", "aud", "exp", "iat", "nonce", "idNummer"),
    )
    assert jwt.header_of(body["id_token"])["alg"] == "BP256R1"
    assert claims["given_name"] == "Clara"
    assert claims["family_name"] == "Sonnenschein"
    assert claims["display_name"] == "Clara Sonnenschein"
    assert claims["professionOID"] == "1.2.276.0.76.4.30"
    assert claims["kim"] == "clara.sonnenschein@kim.tim.test"


async def test_same_card_gets_the_same_sub(idp: Idp) -> None:
    first = (await idp.token(await idp.choose())).json()["id_token"]
    second = (await idp.token(await idp.choose())).json()["id_token"]
    key = jwk.JWK(**(await idp.http.get(idp.url + "/jwks")).json()["keys"][0])
    subs = {
        jwt.verify(t, key, algs=["ES256"], issuer=idp.url, audience=CLIENT)["sub"]
        for t in (first, second)
    }
    assert len(subs) == 1


async def test_public_client_authenticates_by_pkce_alone(idp: Idp) -> None:
    code = await idp.choose(client_id=PUBLIC)
    response = await idp.token(code, client_id=PUBLIC)
    assert response.status_code == 200, response.text
    code = await idp.choose(client_id=PUBLIC)
    refused = await idp.token(code, client_id=PUBLIC, client_secret="guess")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


async def test_english_page_on_request(idp: Idp) -> None:
    page = await idp.page(lang="en")
    assert "Choose a card" in page.text
    accepted = await idp.http.get(
        idp.url + "/auth", params=idp.auth_params(), headers={"Accept-Language": "en-GB,de"}
    )
    assert 'lang="en"' in accepted.text
    assert 'lang="de"' in (await idp.page()).text


async def test_cancel_returns_access_denied_with_state(idp: Idp) -> None:
    page = await idp.page()
    response = await idp.http.post(
        idp.url + "/auth", data={"request_id": request_id(page.text), "cancel": "1"}
    )
    query = _redirect_query(response)
    assert query["error"] == "access_denied"
    assert query["state"] == "state-123"


async def test_health(idp: Idp) -> None:
    response = await idp.http.get(idp.url + "/health")
    assert response.json() == {"status": "ok"}
