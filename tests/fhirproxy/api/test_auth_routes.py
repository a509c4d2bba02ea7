"""OAuth ``/token``, ``/ti-provider-authenticate``, ``/owner-authenticate`` (RegService token)
and rate limiting of the FHIR-Proxy's auth endpoints, against a running proxy.

Requirement ids: ML-123881 (provider authentication), ML-123873 (owner authentication).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk

from tests.fhirproxy.conftest import Stack, start_stack
from timkit.core import jwt
from timkit.core.ratelimit import RateLimit
from timkit.core.tls import LocalPKI
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.auth.rate_limiter import RateLimiter

TELEMATIK_A = "1-SMC-B-Testkarte-883110000092414"
TELEMATIK_B = "1-SMC-B-Testkarte-883110000092415"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    """An HTTP Basic Authorization header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def b64(data: bytes | dict[str, Any]) -> str:
    """base64url of bytes or of a JSON object."""
    return jwt.b64url(data if isinstance(data, bytes) else orjson.dumps(data))


def raw_es_sign(private_pem: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A compact JWS signed with an EC key *whatever* ``header["alg"]`` says (for attacks)."""
    key = serialization.load_pem_private_key(private_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signing_input = f"{b64(header)}.{b64(claims)}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A compact JWS with HMAC-SHA256 over ``secret`` (the classic public-key-as-secret attack)."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    mac = hmac.HMAC(secret, hashes.SHA256())
    mac.update(signing_input.encode())
    return f"{signing_input}.{b64(mac.finalize())}"


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """An ``alg: none`` token."""
    return f"{b64(header)}.{b64(claims)}."


async def form_token(stack: Stack, body: str, headers: dict[str, str]) -> Any:
    return await stack.client.post(stack.url + "/token", content=body, headers=headers)


# --- /token and /ti-provider-authenticate (ML-123881) --------------------------------------


async def test_ml_123881_client_credentials_with_basic_auth(stack: Stack) -> None:
    secret = stack.add_provider("provider-a")
    response = await form_token(
        stack, "grant_type=client_credentials", {**FORM, **basic("provider-a", secret)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "ti-provider"
    assert body["expires_in"] == stack.ctx.config.tokens.ti_provider
    assert response.headers["Cache-Control"] == "no-store"
    claims = stack.ctx.tokens.check(body["access_token"], Kind.TI_PROVIDER)
    assert claims["sub"] == "provider-a"


async def test_ml_123881_client_credentials_with_form_fields(stack: Stack) -> None:
    secret = stack.add_provider("provider-a")
    body = f"grant_type=client_credentials&client_id=provider-a&client_secret={secret}"
    response = await form_token(stack, body + "&scope=ti-provider", FORM)
    assert response.status_code == 200, response.text
    assert stack.ctx.tokens.check(response.json()["access_token"], Kind.TI_PROVIDER)


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [("provider-a", "wrong"), ("nobody", "whatever"), ("provider-a", ""), ("", "x")],
)
async def test_ml_123881_bad_client_credentials_are_invalid_client(
    stack: Stack, client_id: str, secret: str
) -> None:
    stack.add_provider("provider-a")
    response = await form_token(
        stack, "grant_type=client_credentials", {**FORM, **basic(client_id, secret)}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("grant_type=password&username=a&password=b", "unsupported_grant_type"),
        ("grant_type=authorization_code&code=x", "unsupported_grant_type"),
        ("", "invalid_request"),
        ("grant_type=client_credentials&grant_type=client_credentials", "invalid_request"),
        ("grant_type=client_credentials&scope=owner", "invalid_scope"),
    ],
)
async def test_ml_123881_token_request_errors(stack: Stack, body: str, error: str) -> None:
    secret = stack.add_provider("provider-a")
    response = await form_token(stack, body, {**FORM, **basic("provider-a", secret)})
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_ml_123881_token_request_needs_a_form_body(stack: Stack) -> None:
    secret = stack.add_provider("provider-a")
    response = await stack.client.post(
        stack.url + "/token",
        json={"grant_type": "client_credentials"},
        headers=basic("provider-a", secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_ml_123881_two_client_authentication_methods_are_rejected(stack: Stack) -> None:
    secret = stack.add_provider("provider-a")
    body = f"grant_type=client_credentials&client_id=provider-a&client_secret={secret}"
    response = await form_token(stack, body, {**FORM, **basic("provider-a", secret)})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_ml_123881_ti_provider_token_exchanged_for_provider_token(stack: Stack) -> None:
    secret = stack.add_provider("provider-a")
    issued = await form_token(
        stack, "grant_type=client_credentials", {**FORM, **basic("provider-a", secret)}
    )
    response = await stack.request(
        "GET", "/ti-provider-authenticate", issued.json()["access_token"]
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "client_id", "token_type", "expires_in"}
    assert body["client_id"] == "provider-a"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == stack.ctx.config.tokens.provider
    claims = stack.ctx.tokens.check(body["access_token"], Kind.PROVIDER)
    assert claims["sub"] == "provider-a"
    assert stack.url + "/tim-provider-services" in claims["aud"]


async def test_ml_123881_missing_bearer_is_401(stack: Stack) -> None:
    response = await stack.request("GET", "/ti-provider-authenticate")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("kind", [Kind.SEARCH, Kind.OWNER, Kind.PROVIDER])
async def test_ml_123881_other_token_kinds_on_provider_endpoint_are_403(
    stack: Stack, kind: Kind
) -> None:
    stack.add_provider("provider-a")
    response = await stack.request(
        "GET", "/ti-provider-authenticate", stack.token(kind, "provider-a")
    )
    assert response.status_code == 403
    assert "ML-123881" in response.json()["error_description"]


async def test_ml_123881_token_of_unregistered_provider_is_401(stack: Stack) -> None:
    response = await stack.request(
        "GET", "/ti-provider-authenticate", stack.token(Kind.TI_PROVIDER, "ghost")
    )
    assert response.status_code == 401


def _signer_key(stack: Stack) -> tuple[bytes, jwk.JWK]:
    pem = (stack.ctx.config.pki_dir / "certs" / "fhir-proxy-token-signer.key").read_bytes()
    return pem, jwt.key_from_pem(pem)


def _ti_provider_claims(stack: Stack, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": stack.url + "/token",
        "sub": "provider-a",
        "aud": [stack.url + "/ti-provider-authenticate"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "scope": "ti-provider",
    }
    claims.update(overrides)
    return claims


async def test_ml_123881_token_attacks_on_provider_endpoint(stack: Stack) -> None:
    """Every forged or stale ti-provider-accesstoken is refused."""
    stack.add_provider("provider-a")
    pem, key = _signer_key(stack)
    public_pem = key.export_to_pem(private_key=False, password=None)
    now = int(time.time())
    good = _ti_provider_claims(stack)
    bp_key = jwt.key_from_pem(
        jwt.generate_key("BP-256").private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    foreign = jwt.key_from_pem(
        jwt.generate_key("P-256").private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    valid = jwt.sign(good, key)
    head, _, signature = valid.split(".")
    tampered_claims = {**good, "sub": "provider-b"}
    attacks = {
        "alg none": unsigned({"alg": "none", "typ": "JWT"}, good),
        "HS256 with public key": hs256(public_pem, {"alg": "HS256", "typ": "JWT"}, good),
        "BP256R1 key": jwt.sign(good, bp_key),
        "foreign ES256 key": jwt.sign(good, foreign),
        "BP256R1 header, ES256 key": raw_es_sign(pem, {"alg": "BP256R1"}, good),
        "expired": jwt.sign({**good, "iat": now - 7200, "exp": now - 3600}, key),
        "not yet valid": jwt.sign({**good, "nbf": now + 3600}, key),
        "issued in the future": jwt.sign({**good, "iat": now + 3600}, key),
        "wrong iss": jwt.sign({**good, "iss": "https://evil.example/token"}, key),
        "no exp": jwt.sign({k: v for k, v in good.items() if k != "exp"}, key),
        "tampered payload": f"{head}.{b64(tampered_claims)}.{signature}",
        "garbage": "not-a-jwt",
    }
    for name, token in attacks.items():
        response = await stack.request("GET", "/ti-provider-authenticate", token)
        assert response.status_code == 401, f"{name}: {response.status_code} {response.text}"
        assert response.json()["error"] == "invalid_token", name
    wrong_aud = jwt.sign({**good, "aud": [stack.url + "/owner"]}, key)
    response = await stack.request("GET", "/ti-provider-authenticate", wrong_aud)
    assert response.status_code == 403
    response = await stack.request("GET", "/ti-provider-authenticate", valid)
    assert response.status_code == 200


# --- /owner-authenticate with a RegService-OpenID-Token (ML-123873) -------------------------


@dataclass
class RegService:
    """A provider's Registrierungs-Dienst signing certificate and key."""

    client_id: str
    cert: x509.Certificate
    key_pem: bytes

    @property
    def key(self) -> jwk.JWK:
        return jwt.key_from_pem(self.key_pem)

    def x5c(self) -> list[str]:
        return jwt.x5c_of([self.cert])


def _regservice(pki: LocalPKI, name: str, client_id: str, curve: ec.EllipticCurve) -> RegService:
    paths = pki.ensure_signing_cert(name, f"RegService {name}", curve=curve)
    cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    return RegService(client_id, cert, paths.key.read_bytes())


@dataclass
class OwnerSetup:
    stack: Stack
    bp: RegService
    es: RegService
    other: RegService

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": "org-admin-1",
            "iss": "https://reg.provider-a.example/openid",
            "aud": self.stack.url + "/owner-authenticate",
            "professionOID": "1.2.276.0.76.4.50",
            "idNummer": TELEMATIK_A,
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return claims

    def token(self, service: RegService | None = None, **overrides: Any) -> str:
        service = service or self.bp
        return jwt.sign(self.claims(**overrides), service.key, x5c=service.x5c())

    async def exchange(self, token: str | None) -> Any:
        return await self.stack.request("GET", "/owner-authenticate", token)


@pytest.fixture
async def owner(stack: Stack, tmp_path: Path) -> OwnerSetup:
    """provider-a (a BP256R1 and an ES256 RegService certificate, domain of TELEMATIK_A) and
    provider-b (one certificate, domain of TELEMATIK_B)."""
    pki = LocalPKI(tmp_path / "regservice-pki")
    setup = OwnerSetup(
        stack,
        _regservice(pki, "reg-a-bp", "provider-a", ec.BrainpoolP256R1()),
        _regservice(pki, "reg-a-es", "provider-a", ec.SECP256R1()),
        _regservice(pki, "reg-b", "provider-b", ec.BrainpoolP256R1()),
    )
    for service in (setup.bp, setup.es, setup.other):
        if stack.ctx.providers.get(service.client_id) is None:
            stack.add_provider(service.client_id)
        pem = service.cert.public_bytes(serialization.Encoding.PEM)
        stack.ctx.providers.add_certificate(service.client_id, pem)
    stack.add_domain("org-a.timkit.test", "provider-a", TELEMATIK_A)
    stack.add_domain("org-b.timkit.test", "provider-b", TELEMATIK_B)
    return setup


@pytest.mark.parametrize("alg", ["BP256R1", "ES256"])
async def test_ml_123873_regservice_token_exchanged_for_owner_token(
    owner: OwnerSetup, alg: str
) -> None:
    service = owner.bp if alg == "BP256R1" else owner.es
    token = owner.token(service)
    assert jwt.header_of(token)["alg"] == alg
    response = await owner.exchange(token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == owner.stack.ctx.config.tokens.owner
    claims = owner.stack.ctx.tokens.check(body["access_token"], Kind.OWNER)
    assert claims["sub"] == TELEMATIK_A
    assert claims["iss"] == owner.stack.url + "/owner-authenticate"
    assert owner.stack.url + "/owner" in claims["aud"]


async def test_ml_123873_token_attacks_on_owner_authenticate(
    owner: OwnerSetup, tmp_path: Path
) -> None:
    """Forged, stale, misdirected or unregistered RegService tokens give 401 naming ML-123873."""
    now = int(time.time())
    good = owner.claims()
    bp_header = {"alg": "BP256R1", "typ": "JWT", "x5c": owner.bp.x5c()}
    es_header = {"alg": "ES256", "typ": "JWT", "x5c": owner.es.x5c()}
    cert_pem = owner.bp.cert.public_bytes(serialization.Encoding.PEM)
    public_pem = owner.bp.key.export_to_pem(private_key=False, password=None)
    stranger_pki = LocalPKI(tmp_path / "other-pki")
    stranger = _regservice(stranger_pki, "stranger", "-", ec.SECP256R1())
    stranger_bp = _regservice(stranger_pki, "stranger-bp", "-", ec.BrainpoolP256R1())
    valid = owner.token()
    head, _, signature = valid.split(".")
    attacks = {
        "alg none": unsigned({**bp_header, "alg": "none"}, good),
        "HS256 with the certificate": hs256(cert_pem, {**bp_header, "alg": "HS256"}, good),
        "HS256 with the public key": hs256(public_pem, {**bp_header, "alg": "HS256"}, good),
        "ES256 header, BP256 key": raw_es_sign(
            owner.bp.key_pem, {**bp_header, "alg": "ES256"}, good
        ),
        "BP256R1 header, P-256 key": raw_es_sign(
            owner.es.key_pem, {**es_header, "alg": "BP256R1"}, good
        ),
        "registered x5c, other key": jwt.sign(good, stranger_bp.key, x5c=owner.bp.x5c()),
        "unregistered x5c": jwt.sign(good, stranger.key, x5c=stranger.x5c()),
        "no x5c": jwt.sign(good, owner.bp.key),
        "malformed x5c": jwt.sign(good, owner.bp.key, x5c=["bm90IGEgY2VydA=="]),
        "expired": owner.token(iat=now - 7200, exp=now - 3600),
        "not yet valid": owner.token(nbf=now + 3600),
        "issued in the future": owner.token(iat=now + 3600),
        "wrong aud": owner.token(aud="https://elsewhere.example/owner-authenticate"),
        "aud of another endpoint": owner.token(aud=owner.stack.url + "/owner"),
        "no iss": jwt.sign(
            {k: v for k, v in good.items() if k != "iss"}, owner.bp.key, x5c=owner.bp.x5c()
        ),
        "no professionOID": jwt.sign(
            {k: v for k, v in good.items() if k != "professionOID"},
            owner.bp.key,
            x5c=owner.bp.x5c(),
        ),
        "empty idNummer": owner.token(idNummer=""),
        "string exp": owner.token(exp=str(now + 300)),
        "tampered payload": f"{head}.{b64({**good, 'idNummer': TELEMATIK_B})}.{signature}",
    }
    for name, token in attacks.items():
        response = await owner.exchange(token)
        assert response.status_code == 401, f"{name}: {response.status_code} {response.text}"
        body = response.json()
        assert body["error"] == "invalid_token", name
        assert "ML-123873" in body["error_description"], name
    assert (await owner.exchange(valid)).status_code == 200


async def test_ml_123873_telematik_id_of_another_provider_is_403(owner: OwnerSetup) -> None:
    response = await owner.exchange(owner.token(idNummer=TELEMATIK_B))
    assert response.status_code == 403
    assert "ML-123873" in response.json()["error_description"]
    response = await owner.exchange(owner.token(owner.other, idNummer=TELEMATIK_A))
    assert response.status_code == 403
    response = await owner.exchange(owner.token(owner.other, idNummer=TELEMATIK_B))
    assert response.status_code == 200


async def test_ml_123873_missing_authorization_without_idp_is_401(owner: OwnerSetup) -> None:
    response = await owner.exchange(None)
    assert response.status_code == 401
    assert "ML-123873" in response.json()["error_description"]
    response = await owner.stack.request(
        "GET", "/owner-authenticate", headers={"Authorization": "Basic eDp5"}
    )
    assert response.status_code == 401


async def test_ml_123873_owner_token_does_not_open_provider_endpoint(owner: OwnerSetup) -> None:
    issued = (await owner.exchange(owner.token())).json()["access_token"]
    response = await owner.stack.request("GET", "/ti-provider-authenticate", issued)
    assert response.status_code == 403


# --- rate limiting ---------------------------------------------------------------------------


async def test_auth_endpoints_are_rate_limited_per_client(tmp_path: Path) -> None:
    async for stack in start_stack(tmp_path, rate_limit={"per_minute": 1, "burst": 2}):
        secret_a = stack.add_provider("provider-a")
        secret_b = stack.add_provider("provider-b")
        request = "grant_type=client_credentials"
        for _ in range(2):
            ok = await form_token(stack, request, {**FORM, **basic("provider-a", secret_a)})
            assert ok.status_code == 200
        limited = await form_token(stack, request, {**FORM, **basic("provider-a", secret_a)})
        assert limited.status_code == 429
        assert limited.json()["error"] == "slow_down"
        assert "retry_after" not in limited.json()
        assert int(limited.headers["Retry-After"]) >= 1
        wrong = await form_token(stack, request, {**FORM, **basic("provider-a", "guess")})
        assert wrong.status_code == 429
        other = await form_token(stack, request, {**FORM, **basic("provider-b", secret_b)})
        assert other.status_code == 200
        for _ in range(2):
            await stack.request("GET", "/tim-authenticate?mxId=x.example")
        limited = await stack.request("GET", "/tim-authenticate?mxId=x.example")
        assert limited.status_code == 429
        assert "Retry-After" in limited.headers


def test_rate_limiter_refills_over_time() -> None:
    now = [1000.0]
    limiter = RateLimiter(RateLimit(per_minute=60, burst=2), clock=lambda: now[0])
    assert limiter.take("a") == 0
    assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0
    now[0] += 1.0
    assert limiter.take("a") == 0
    now[0] += 100.0
    assert limiter.take("a") == 0
    assert limiter.take("a") == 0
    assert limiter.take("a") > 0


async def test_ml_123873_a_regservice_token_is_exchanged_only_once(owner: OwnerSetup) -> None:
    """Finding 8: one RegService-OpenID-Token bought two owner-accesstokens."""
    token = owner.token()
    assert (await owner.exchange(token)).status_code == 200
    again = await owner.exchange(token)
    assert again.status_code == 401, again.text
    assert again.json()["error"] == "invalid_token"
    assert "already exchanged" in again.json()["error_description"]
    assert "ML-123873" in again.json()["error_description"]
    # The same claims with the ECDSA signature re-encoded (s -> n - s) are still that token.
    head, _, signature = token.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    order = 0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7  # BP256R1 n
    flipped = r.to_bytes(32, "big") + (order - s).to_bytes(32, "big")
    malleated = head + "." + base64.urlsafe_b64encode(flipped).rstrip(b"=").decode()
    replay = await owner.exchange(malleated)
    assert replay.status_code == 401, replay.text
    assert "already exchanged" in replay.json()["error_description"]
    # A fresh token of the same Org-Admin is fine.
    assert (await owner.exchange(owner.token(iat=int(time.time()) - 1))).status_code == 200
