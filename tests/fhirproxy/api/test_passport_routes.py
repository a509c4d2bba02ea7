"""The seed's compatibility mode: ``/tim-search`` with PASSporTs (ML-123483, AF_10036)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from jwcrypto import jwk, jws

from tests.fhirproxy.api.test_search_routes import assert_read_only_capability, endpoint, put
from tests.fhirproxy.conftest import Stack, start_stack
from timkit.fhirproxy.auth.access_tokens import Kind
from timkit.fhirproxy.handlers.signed_list import Federation
from timkit.fhirproxy.storage.domains import Domain

CALLER = "matrix:u/alice:hs1.example"


@pytest.fixture
async def passport_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Directory + proxy with the PASSporT mode on."""
    async for running in start_stack(tmp_path, passport={"enabled": True}):
        yield running


async def tim_search(stack: Stack, path: str) -> dict[str, Any]:
    """GET ``/tim-search<path>`` as :data:`CALLER`; the JSON body of the 200 answer."""
    token = stack.token(Kind.SEARCH, CALLER)
    response = await stack.request("GET", "/tim-search" + path, token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def published_key(stack: Stack) -> tuple[jwk.JWK, str]:
    """The PASSporT signer's public key from ``/PASSporTCertificates``, and the x5u PEM."""
    listed = (await stack.client.get(stack.url + "/PASSporTCertificates")).json()
    (pem,) = listed["passportSigningCertificates"]
    x5u = (await stack.client.get(stack.url + "/PASSporTCertificates/passport.cer")).text
    assert x5u.startswith(pem)
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return jwk.JWK.from_pyca(certificate.public_key()), x5u


def split(address: str) -> tuple[str, str | None]:
    """An address as (MXID, PASSporT or None)."""
    mxid, _, token = address.partition("?PASSporT=")
    return mxid, token or None


async def test_ml_123483_passport_attached_and_verifiable(passport_stack: Stack) -> None:
    stack = passport_stack
    await put(stack, endpoint("carol"))
    key, _ = await published_key(stack)
    found = await tim_search(stack, "/Endpoint/carol")
    mxid, token = split(found["address"])
    assert mxid == "matrix:u/carol:hs1.example"
    assert token
    verifier = jws.JWS()
    verifier.deserialize(token)
    verifier.verify(key, alg="ES256")
    header = verifier.jose_header
    assert header["typ"] == "passport"
    assert header["alg"] == "ES256"
    assert header["x5u"] == stack.url + "/PASSporTCertificates/passport.cer"
    claims = orjson.loads(verifier.payload)
    assert claims["orig"] == {"uri": CALLER}
    assert claims["dest"] == {"uri": [mxid]}
    assert isinstance(claims["iat"], int)


async def test_ml_123483_no_passport_for_expired_or_non_mxid(passport_stack: Stack) -> None:
    stack = passport_stack
    await put(stack, endpoint("expired", period={"end": "2020-01-01T00:00:00Z"}))
    await put(stack, endpoint("current", period={"end": "2999-01-01"}))
    bundle = await tim_search(stack, "/Endpoint?_count=100")
    addresses = {e["resource"]["id"]: e["resource"]["address"] for e in bundle["entry"]}
    assert split(addresses["expired"])[1] is None
    assert split(addresses["current"])[1] is not None
    assert split(addresses["PharmacyEndpointTIMExample"])[1] is not None
    assert "PASSporT" not in addresses["PharmacyEndpointErpReservationExample"]
    assert (
        "KIMEndpointExample" not in addresses or "PASSporT" not in addresses["KIMEndpointExample"]
    )
    assert all(e["fullUrl"].startswith(stack.url + "/tim-search/") for e in bundle["entry"])


async def test_ml_123483_passport_on_telecom_mxids(passport_stack: Stack) -> None:
    stack = passport_stack
    dentist = (
        await stack.client.get(stack.directory_url + "/Practitioner/TIPractitionerExampleDentist")
    ).json()
    dentist["telecom"] = [
        {"system": "url", "value": "matrix:u/dr.zahn:hs1.example"},
        {"system": "url", "value": "matrix:u/old:hs1.example", "period": {"end": "2021-05"}},
        {"system": "email", "value": "praxis@example.org"},
    ]
    await put(stack, dentist)
    found = await tim_search(stack, "/Practitioner/TIPractitionerExampleDentist")
    values = [t["value"] for t in found["telecom"]]
    assert split(values[0])[1] is not None
    assert split(values[1])[1] is None
    assert values[2] == "praxis@example.org"


async def test_af_10036_tim_search_is_search(passport_stack: Stack) -> None:
    stack = passport_stack
    token = stack.token(Kind.SEARCH, CALLER)
    assert (await stack.request("POST", "/tim-search/Endpoint", token, json={})).status_code == 405
    assert (await stack.request("GET", "/tim-search/Endpoint")).status_code == 401
    await put(stack, endpoint("switched-off", status="off"))
    response = await stack.request("GET", "/tim-search/Endpoint/switched-off", token)
    assert response.status_code == 404
    plain = await stack.request("GET", "/search/Endpoint/PharmacyEndpointTIMExample", token)
    assert "PASSporT" not in plain.json()["address"]
    metadata = await stack.request("GET", "/tim-search/metadata", token)
    assert metadata.status_code == 200
    assert_read_only_capability(metadata.json(), stack.url + "/tim-search")


async def test_ml_123483_mode_is_off_by_default(stack: Stack) -> None:
    token = stack.token(Kind.SEARCH, CALLER)
    assert (await stack.request("GET", "/tim-search/Endpoint", token)).status_code == 404
    assert (await stack.client.get(stack.url + "/PASSporTCertificates")).status_code == 404


async def test_af_10036_hashed_federation_list(passport_stack: Stack) -> None:
    stack = passport_stack
    url = stack.url + "/tim-provider-services/FederationList"
    assert (await stack.client.get(url)).status_code == 401
    token = stack.token(Kind.PROVIDER, "provider-a")
    empty = (await stack.request("GET", "/tim-provider-services/FederationList", token)).json()
    assert empty == {"version": 0, "hashAlgorithm": "SHA-256", "domainList": []}
    federation = Federation.open(stack.ctx.config, stack.ctx.db)
    federation.add(Domain("hs1.example", "1-1.58.00000040", tim_anbieter="provider-a"))
    federation.add(Domain("hs2.example", "2-2.58.00000040", tim_anbieter="provider-a"))
    listed = (await stack.request("GET", "/tim-provider-services/FederationList", token)).json()
    assert listed["version"] == 2
    assert set(listed["domainList"]) == {
        hashlib.sha256(b"hs1.example").hexdigest(),
        hashlib.sha256(b"hs2.example").hexdigest(),
    }
    certificates = await stack.request("GET", "/tim-provider-services/PASSporTCertificates", token)
    assert certificates.json()["passportSigningCertificates"][0].startswith("-----BEGIN")
