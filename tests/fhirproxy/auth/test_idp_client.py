"""Owner sign-in at a trusted IDP (ML-123873): ``GET /owner-authenticate`` without a token
redirects to the IDP, ``GET /signin-gematik-idp-dienst`` redeems the code. The IDP is the
small real OIDC provider of ``tests/support/oidc.py`` over HTTPS.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from yarl import URL

from tests.fhirproxy.conftest import Stack, start_stack
from tests.support.oidc import OidcProvider
from timkit.core import jwt
from timkit.core.tls import client_ssl_context
from timkit.fhirproxy.auth.access_tokens import Kind

CLIENT_ID = "vzd-fhir-directory"


@dataclass
class IdpSetup:
    stack: Stack
    idp: OidcProvider
    second: OidcProvider
    browser: httpx.AsyncClient

    async def start(self, **params: str) -> httpx.Response:
        """``GET /owner-authenticate`` without a token (the redirect to the IDP)."""
        return await self.stack.request("GET", "/owner-authenticate", params=params)

    async def login(self, **params: str) -> tuple[httpx.Response, URL]:
        """Run the whole flow like a browser; the sign-in response and the callback URL."""
        start = await self.start(**params)
        assert start.status_code == 302, start.text
        at_idp = await self.browser.get(start.headers["Location"])
        assert at_idp.status_code == 302, at_idp.text
        callback = URL(at_idp.headers["Location"])
        return await self.browser.get(str(callback)), callback


def _b64(data: bytes | dict[str, Any]) -> str:
    return jwt.b64url(data if isinstance(data, bytes) else orjson.dumps(data))


@pytest.fixture
async def idp(tmp_path: Path) -> AsyncIterator[IdpSetup]:
    """Proxy trusting two IDPs (ES256 and BP256R1), each knowing the proxy as a client."""
    first = await OidcProvider(tmp_path / "idp-1", {CLIENT_ID: "s3cret"}).start()
    second = await OidcProvider(tmp_path / "idp-2", {CLIENT_ID: "other"}, alg="BP256R1").start()
    settings = {
        "idps": (first.trusted_idp(CLIENT_ID), second.trusted_idp(CLIENT_ID)),
        "rate_limit": {"per_minute": 6000, "burst": 1000},
    }
    try:
        async for stack in start_stack(tmp_path, **settings):
            browser = httpx.AsyncClient(verify=client_ssl_context(first.ca_file), timeout=30)
            async with browser:
                yield IdpSetup(stack, first, second, browser)
    finally:
        await first.close()
        await second.close()


async def test_ml_123873_idp_sign_in_issues_owner_token(idp: IdpSetup) -> None:
    start = await idp.start()
    assert start.status_code == 302
    location = URL(start.headers["Location"])
    assert str(location.with_query(None)) == idp.idp.issuer + "/authorize"
    query = location.query
    assert query["client_id"] == CLIENT_ID
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == idp.stack.url + "/signin-gematik-idp-dienst"
    assert len(query["state"]) >= 32
    assert query["nonce"]

    response, callback = await idp.login()
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    claims = idp.stack.ctx.tokens.check(body["access_token"], Kind.OWNER)
    assert claims["sub"] == idp.idp.user["idNummer"]
    assert claims["professionOID"] == idp.idp.user["professionOID"]
    redeemed = idp.idp.redeemed[-1]
    assert redeemed["code"] == callback.query["code"]
    assert redeemed["redirect_uri"] == idp.stack.url + "/signin-gematik-idp-dienst"
    assert "client_secret" not in redeemed, "the secret goes in the Basic header"


async def test_ml_123873_state_is_single_use(idp: IdpSetup) -> None:
    response, callback = await idp.login()
    assert response.status_code == 200
    replay = await idp.browser.get(str(callback))
    assert replay.status_code == 401
    assert "ML-123873" in replay.json()["error_description"]


async def test_ml_123873_unknown_state_is_401(idp: IdpSetup) -> None:
    response = await idp.stack.request(
        "GET", "/signin-gematik-idp-dienst", params={"code": "abc", "state": "made-up"}
    )
    assert response.status_code == 401
    missing = await idp.stack.request("GET", "/signin-gematik-idp-dienst", params={"code": "x"})
    assert missing.status_code == 400


async def test_ml_123873_code_is_redeemed_only_with_its_state(idp: IdpSetup) -> None:
    """A code bound to one sign-in cannot be redeemed under another state (PKCE mismatch)."""
    first = URL((await idp.start()).headers["Location"])
    second = URL((await idp.start()).headers["Location"])
    at_idp = await idp.browser.get(str(first))
    code = URL(at_idp.headers["Location"]).query["code"]
    response = await idp.stack.request(
        "GET",
        "/signin-gematik-idp-dienst",
        params={"code": code, "state": second.query["state"]},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_ml_123873_idp_error_redirect_is_401(idp: IdpSetup) -> None:
    state = URL((await idp.start()).headers["Location"]).query["state"]
    response = await idp.stack.request(
        "GET",
        "/signin-gematik-idp-dienst",
        params={"error": "access_denied\r\nX: y", "state": state},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "access_denied"


async def test_ml_123873_idp_is_chosen_by_issuer(idp: IdpSetup) -> None:
    start = await idp.start(idp=idp.second.issuer)
    assert start.headers["Location"].startswith(idp.second.issuer + "/authorize")
    browser = httpx.AsyncClient(verify=client_ssl_context(idp.second.ca_file), timeout=30)
    async with browser:
        at_idp = await browser.get(start.headers["Location"])
        response = await idp.stack.client.get(at_idp.headers["Location"])
    assert response.status_code == 200, response.text
    assert len(idp.second.redeemed) == 1, "the BP256R1 IDP redeemed the code"
    assert idp.idp.redeemed == []
    unknown = await idp.start(idp="https://evil.example")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_request"


def _hs256(secret: bytes) -> Callable[[dict[str, Any]], str]:
    def forge(claims: dict[str, Any]) -> str:
        signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
        mac = hmac.HMAC(secret, hashes.SHA256())
        mac.update(signing_input.encode())
        return f"{signing_input}.{_b64(mac.finalize())}"

    return forge


def _attacks(idp: OidcProvider) -> dict[str, Callable[[dict[str, Any]], str]]:
    now = int(time.time())
    other_key = jwt.key_from_pem(
        jwt.generate_key("P-256").private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public_pem = idp.key.export_to_pem(private_key=False, password=None)

    def tampered(claims: dict[str, Any]) -> str:
        head, _, signature = idp.sign(claims).split(".")
        return f"{head}.{_b64({**claims, 'idNummer': '9-evil'})}.{signature}"

    return {
        "alg none": lambda c: f"{_b64({'alg': 'none'})}.{_b64(c)}.",
        "HS256 with the public key": _hs256(public_pem),
        "other key, same kid": lambda c: jwt.sign(c, other_key, kid=idp.kid),
        "unknown kid": lambda c: jwt.sign(c, other_key, kid="unknown"),
        "wrong iss": lambda c: idp.sign({**c, "iss": "https://evil.example"}),
        "wrong aud": lambda c: idp.sign({**c, "aud": "someone-else"}),
        "extra aud without azp": lambda c: idp.sign({**c, "aud": [CLIENT_ID, "x"]}),
        "expired": lambda c: idp.sign({**c, "iat": now - 7200, "exp": now - 3600}),
        "not yet valid": lambda c: idp.sign({**c, "nbf": now + 3600}),
        "wrong nonce": lambda c: idp.sign({**c, "nonce": "replayed"}),
        "no nonce": lambda c: idp.sign({k: v for k, v in c.items() if k != "nonce"}),
        "no idNummer": lambda c: idp.sign({k: v for k, v in c.items() if k != "idNummer"}),
        "tampered payload": tampered,
    }


async def test_ml_123873_id_token_attacks(idp: IdpSetup) -> None:
    for name, forge in _attacks(idp.idp).items():
        idp.idp.forge = forge
        response, _ = await idp.login()
        assert response.status_code == 401, f"{name}: {response.status_code} {response.text}"
        body = response.json()
        assert body["error"] == "invalid_token", name
        assert "ML-123873" in body["error_description"], name
    idp.idp.forge = None
    response, _ = await idp.login()
    assert response.status_code == 200


async def test_ml_123873_wrong_client_secret_at_idp_is_401(tmp_path: Path) -> None:
    provider = await OidcProvider(tmp_path / "idp", {CLIENT_ID: "right"}).start()
    trusted = {**provider.trusted_idp(CLIENT_ID), "client_secret": "wrong"}
    try:
        async for stack in start_stack(tmp_path, idps=(trusted,)):
            start = await stack.request("GET", "/owner-authenticate")
            browser = httpx.AsyncClient(verify=client_ssl_context(provider.ca_file))
            async with browser:
                at_idp = await browser.get(start.headers["Location"])
                response = await browser.get(at_idp.headers["Location"])
            assert response.status_code == 401
            assert "did not redeem" in response.json()["error_description"]
    finally:
        await provider.close()
