"""AF_10064 at the RD: pull, verify, hold and serve the federation list (ML-123672, -123891).

A real FHIR-Proxy signs the lists; the RD trusts the stack's local CA.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from tests.registration.provisioning.stack import (
    ACTIVE_TID,
    PROXY_TOKEN,
    RdStack,
    database_url,
    start_rd,
)

from timkit.core import jwt
from timkit.core.errors import TimkitError
from timkit.core.federation_list import ListVerificationError
from timkit.core.tls import LocalPKI
from timkit.registration.federation import (
    OUTDATED,
    VERSION_HEADER,
    FederationCache,
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def rd(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RdStack]:
    """RD + FHIR stack on each engine."""
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    async for stack in start_rd(tmp_path, database_url(request.param, tmp_path, postgres)):
        yield stack


async def _federation(rd: RdStack, version: int | None = None, token: str = PROXY_TOKEN):
    params = {"version": str(version)} if version is not None else {}
    return await rd.api("GET", "/federation", token, params=params)


async def _directory_jws(rd: RdStack) -> bytes:
    result = await rd.ctx.directory.federation_list(None)
    assert result is not None
    return result[1]


def _version(jws: bytes) -> int:
    version: int = orjson.loads(jwt.b64url_decode(jws.split(b".")[1].decode()))["version"]
    return version


async def test_ml_123672_rd_pulls_the_list_and_serves_it_byte_for_byte(rd: RdStack) -> None:
    await rd.ctx.directory.add_domain("eins.example.de", ACTIVE_TID)
    await rd.ctx.federation.refresh()
    served = await _federation(rd)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "application/jose"
    assert served.content == await _directory_jws(rd)
    version = int(served.headers[VERSION_HEADER])
    assert _version(served.content) == version
    current = await _federation(rd, version)
    assert current.status_code == 304
    # a new domain at the directory: the RD's next pull serves a higher version
    await rd.ctx.directory.add_domain("zwei.example.de", ACTIVE_TID)
    assert await rd.ctx.federation.refresh() is True
    newer = await _federation(rd, version)
    assert newer.status_code == 200
    assert int(newer.headers[VERSION_HEADER]) > version
    assert b"zwei.example.de" in jwt.b64url_decode(newer.content.split(b".")[1].decode())
    # nothing new at the directory (204): still current
    assert await rd.ctx.federation.refresh() is False


async def test_only_the_rds_proxies_get_the_list(rd: RdStack) -> None:
    await rd.ctx.federation.refresh()
    missing = await rd.api("GET", "/federation")
    assert missing.status_code == 401
    assert missing.json()["errcode"] == "M_MISSING_TOKEN"
    wrong = await _federation(rd, token="guess")
    assert wrong.status_code == 401
    assert wrong.json()["errcode"] == "M_UNKNOWN_TOKEN"
    right = await _federation(rd, token=PROXY_TOKEN)
    assert right.status_code == 200
    bad_version = await rd.api("GET", "/federation?version=x", PROXY_TOKEN)
    assert bad_version.status_code == 400


async def test_ml_123891_a_rolled_back_list_is_ignored(
    rd: RdStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rd.ctx.directory.add_domain("eins.example.de", ACTIVE_TID)
    old = await _directory_jws(rd)
    await rd.ctx.directory.add_domain("zwei.example.de", ACTIVE_TID)
    await rd.ctx.federation.refresh()
    held = rd.ctx.federation.held
    assert held is not None
    assert held.version > _version(old)

    async def rolled_back(_version_held: int | None, _alg: str = "") -> tuple[int, bytes]:
        return _version(old), old

    monkeypatch.setattr(rd.ctx.directory, "federation_list", rolled_back)
    assert await rd.ctx.federation.refresh() is False
    assert rd.ctx.federation.held == held
    assert (await _federation(rd)).content == held.jws


async def test_ml_123891_a_forged_or_tampered_list_is_never_served(
    rd: RdStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rd.ctx.federation.refresh()
    held = rd.ctx.federation.held
    assert held is not None
    evil = LocalPKI(tmp_path / "evil").ensure_signing_cert(
        "forger", "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1()
    )
    payload = orjson.dumps({"version": 10**9, "domainList": [{"domain": "evil.example.de"}]})
    forged = jwt.sign(
        payload,
        jwt.key_from_pem(evil.key.read_bytes()),
        x5c=jwt.x5c_of(x509.load_pem_x509_certificates(evil.cert.read_bytes())),
    ).encode()
    header, _, signature = held.jws.split(b".")
    tampered = b".".join([header, jwt.b64url(payload).encode(), signature])
    for bad in (forged, tampered):

        async def send(_v: int | None, _alg: str = "", bad: bytes = bad) -> tuple[int, bytes]:
            return 10**9, bad

        monkeypatch.setattr(rd.ctx.directory, "federation_list", send)
        with pytest.raises(ListVerificationError):
            await rd.ctx.federation.refresh()
        assert rd.ctx.federation.held == held
    assert (await _federation(rd)).content == held.jws


async def test_outdated_after_ttl_and_kept_across_restarts(rd: RdStack) -> None:
    await rd.ctx.federation.refresh()
    held = rd.ctx.federation.held
    assert held is not None
    # a restarted RD serves the held list at once
    restarted = FederationCache(
        rd.ctx.db, rd.ctx.config.federation, rd.ctx.directory, rd.ctx.federation.anchor_files
    )
    assert restarted.serve(None) == held
    ttl = rd.ctx.config.federation.ttl
    rd.ctx.federation.clock = lambda: held.refreshed_ms / 1000 + ttl - 1
    assert (await _federation(rd)).status_code == 200
    rd.ctx.federation.clock = lambda: held.refreshed_ms / 1000 + ttl + 1
    outdated = await _federation(rd, held.version)
    assert outdated.status_code == 503
    assert outdated.json()["errcode"] == OUTDATED
    assert "veraltet" in outdated.json()["error"]
    # a valid refresh (the directory confirms the list) makes it current again
    await rd.ctx.federation.refresh()
    assert (await _federation(rd, held.version)).status_code == 304


async def test_failed_pulls_retry_then_alert_and_keep_the_last_list(
    rd: RdStack, caplog: pytest.LogCaptureFixture
) -> None:
    await rd.ctx.federation.stop()  # the background pull would interleave its own ticks
    await rd.ctx.federation.refresh()
    held = rd.ctx.federation.held
    settings = rd.ctx.config.federation
    rd.ctx.directory.base = "http://127.0.0.1:9"
    delays = [await rd.ctx.federation.tick() for _ in range(settings.retries + 1)]
    assert delays == [settings.retry_interval] * settings.retries + [settings.interval]
    alerts = [r for r in caplog.records if r.levelno == logging.ERROR and "ALERT" in r.message]
    assert len(alerts) == 1
    assert rd.ctx.federation.held == held
    assert (await _federation(rd)).status_code == 200


async def test_no_list_yet_is_503(tmp_path: Path) -> None:
    async for rd in start_rd(tmp_path, database_url("sqlite", tmp_path, None)):
        await rd.ctx.federation.stop()
        rd.ctx.federation.held = None
        response = await _federation(rd)
        assert response.status_code == 503
        with pytest.raises(TimkitError):
            rd.ctx.federation.serve(None)
