"""I_requestToken: the RD's RegService-OpenID-Token is accepted by a real FHIR-Proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from tests.registration.provisioning.stack import (
    ACTIVE_TID,
    PROFESSION_OID,
    PROVIDER,
    RdStack,
    database_url,
    start_rd,
)

from timkit.core import jwt


@pytest.fixture(params=["BP256R1", "ES256"])
async def rd(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RdStack]:
    """RD + FHIR stack, the RD's token signer registered for its provider."""
    settings = {"request_token": {"alg": request.param}}
    async for stack in start_rd(
        tmp_path, database_url("sqlite", tmp_path, None), settings=settings
    ):
        signer = stack.ctx.token_signer()
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in signer.chain)
        stack.fhir.ctx.providers.add_certificate(PROVIDER, pem)  # timkit directory provider cert
        yield stack


async def _owner_authenticate(rd: RdStack, token: str) -> httpx.Response:
    return await rd.fhir.request("GET", "/owner-authenticate", token)


async def test_token_is_accepted_by_owner_authenticate(rd: RdStack) -> None:
    admin, session = rd.admin()
    await rd.ctx.directory.add_domain("praxis.example.de", ACTIVE_TID)
    response = await rd.api("POST", "/api/v1/token", session)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "RegService-OpenID-Token"
    token = body["token"]
    header = jwt.header_of(token)
    assert header["alg"] == rd.ctx.config.request_token.alg
    assert header["typ"] == "JWT"
    assert header["x5c"] == rd.ctx.token_signer().x5c()
    claims = jwt.verify(
        token,
        jwt.key_from_certificate(rd.ctx.token_signer().certificate),
        algs=(header["alg"],),
        issuer=rd.url,
        audience=rd.fhir.url + "/owner-authenticate",
    )
    assert claims["sub"] == str(admin.account_id)
    assert (claims["idNummer"], claims["professionOID"]) == (ACTIVE_TID, PROFESSION_OID)
    assert claims["exp"] - claims["iat"] == rd.ctx.config.request_token.lifetime
    owner = await _owner_authenticate(rd, token)
    assert owner.status_code == 200, owner.text
    assert owner.json()["access_token"]


async def test_refused_when_the_organisation_has_no_domain_of_the_provider(rd: RdStack) -> None:
    _, session = rd.admin("other", "1-no-domain", "Ohne Domain")
    token = (await rd.api("POST", "/api/v1/token", session)).json()["token"]
    owner = await _owner_authenticate(rd, token)
    assert owner.status_code == 403


async def test_only_a_logged_in_org_admin_gets_a_token(rd: RdStack) -> None:
    assert (await rd.api("POST", "/api/v1/token")).status_code == 401
