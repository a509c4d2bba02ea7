"""AF_10064 at the RD: pull, verify, hold and serve the federation list (ML-123672, -123891).

A real FHIR-Proxy signs the lists; the RD trusts the stack's local CA. For finding 2 of
issue 14 (forged lists, the version floor) a stand-in for the FHIR-Proxy's provider
interface (``/token``, ``/ti-provider-authenticate``,
``/tim-provider-services/FederationList/federationList.jws``) serves the forgeries over real
TLS to the RD's real :class:`DirectoryClient`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from tests.registration.provisioning.stack import (
    ACTIVE_TID,
    PROXY_TOKEN,
    RdStack,
    database_url,
    start_rd,
)
from tests.support.forged_lists import EVIL, forgeries, list_signer, load, local_ca, sign_list

from timkit.core import jwt
from timkit.core.db import Database
from timkit.core.errors import TimkitError
from timkit.core.federation_list import ListVerificationError, verify_list
from timkit.core.tls import LocalPKI, server_ssl_context
from timkit.core.web import running_app
from timkit.registration.api.list_route import VERSION_HEADER
from timkit.registration.config import DirectorySettings, FederationSettings
from timkit.registration.directory_client import DirectoryClient
from timkit.registration.list_cache import MISSING, OUTDATED, FederationCache
from timkit.registration.storage import federation_list
from timkit.registration.storage.migrations import MIGRATIONS


@pytest.fixture(params=["sqlite", "postgresql"])
async def rd(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RdStack]:
    """RD + FHIR stack on each engine."""
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    async for stack in start_rd(tmp_path, database_url(request.param, tmp_path, postgres)):
        yield stack


async def _federation(
    rd: RdStack, version: int | None = None, token: str = PROXY_TOKEN
) -> httpx.Response:
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
    await rd.ctx.federation.stop()  # the first background pull would re-stamp ``held``
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
    await rd.ctx.federation.stop()  # the first background pull would re-stamp ``held``
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
    await rd.ctx.federation.stop()  # the background pull would confirm the list meanwhile
    await rd.ctx.federation.refresh()
    held = rd.ctx.federation.held
    assert held is not None
    # a restarted RD serves the held list at once
    restarted = FederationCache(
        rd.ctx.db, rd.ctx.config.federation, rd.ctx.directory, rd.ctx.federation.anchor_files
    )
    assert restarted.serve(None) == held
    ttl = rd.ctx.config.federation.ttl
    rd.ctx.federation.clock = lambda: held.refreshed + ttl - 1
    assert (await _federation(rd)).status_code == 200
    rd.ctx.federation.clock = lambda: held.refreshed + ttl + 1
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


# -- issue 14, finding 2: forged lists and the version floor ------------------------------


@dataclass
class FakeDirectory:
    """The FHIR-Proxy's provider interface as the RD uses it for the federation list."""

    jws: bytes | None = None
    version: int = 0
    asked: list[str | None] = field(default_factory=list)

    async def token(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": "ti-provider", "expires_in": 300})

    async def authenticate(self, request: web.Request) -> web.Response:
        return web.json_response({"access_token": "provider", "expires_in": 300})

    async def federation_list(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer provider":
            return web.json_response({"message": "no token"}, status=401)
        held = request.query.get("version")
        self.asked.append(held)
        if self.jws is None:
            return web.json_response({"message": "no list"}, status=404)
        if held == str(self.version):
            return web.Response(status=204)
        return web.Response(body=self.jws, content_type="application/jose")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_get("/ti-provider-authenticate", self.authenticate)
        app.router.add_get(
            "/tim-provider-services/FederationList/federationList.jws", self.federation_list
        )
        return app


@dataclass
class StandInRd:
    directory: FakeDirectory
    pki: LocalPKI
    db: Database
    client: DirectoryClient
    settings: FederationSettings

    def cache(self) -> FederationCache:
        """A (re)started RD's cache on the same database."""
        return FederationCache(self.db, self.settings, self.client, self.settings.trust_anchors)

    def publish(self, version: int, domains: list[str]) -> bytes:
        signer = list_signer(self.pki)
        jws = sign_list(signer, [signer.cert], version, domains)
        self.directory.jws, self.directory.version = jws, version
        return jws


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(f"sqlite:///{tmp_path / 'registration.db'}")
    database.migrate("registration", MIGRATIONS)
    yield database
    database.close()


@pytest.fixture
async def stand_in_rd(tmp_path: Path, sqlite_db: Database) -> AsyncIterator[StandInRd]:
    pki = LocalPKI(tmp_path / "pki")
    tls = pki.ensure_server_cert("directory", ["127.0.0.1"])
    directory = FakeDirectory()
    async with running_app(directory.app(), "127.0.0.1", 0, server_ssl_context(tls)) as runner:
        port = runner.addresses[0][1]
        client = DirectoryClient(
            DirectorySettings(
                base_url=f"https://127.0.0.1:{port}",
                client_id="timkit-registration",
                client_secret="secret",
                ca_file=pki.ca_cert_path,
            )
        )
        settings = FederationSettings(trust_anchors=(pki.ca_cert_path,))
        try:
            yield StandInRd(directory, pki, sqlite_db, client, settings)
        finally:
            await client.aclose()


async def test_ml_123677_forged_lists_from_the_directory_are_never_held_or_served(
    stand_in_rd: StandInRd,
) -> None:
    genuine = stand_in_rd.publish(1, ["a.tim.test"])
    cache = stand_in_rd.cache()
    assert await cache.refresh() is True
    for name, forged in forgeries(stand_in_rd.pki).items():
        cache.settings = stand_in_rd.settings.model_copy(update={"sig_alg": forged.sig_alg})
        stand_in_rd.directory.jws, stand_in_rd.directory.version = forged.jws, 10**6
        with pytest.raises(ListVerificationError) as rejected:
            await cache.refresh()
        assert forged.rule in rejected.value.message, name
        served = cache.serve(None)
        assert served is not None
        assert served.jws == genuine, name
        assert cache.floor == 1, name
    with stand_in_rd.db.read() as cur:
        stored = federation_list.load(cur)
    assert stored is not None
    assert stored.jws == genuine
    assert EVIL.encode() not in stored.jws


async def test_ml_123891_the_version_floor_survives_a_restart(stand_in_rd: StandInRd) -> None:
    """An older list in the store after a newer one was accepted is not served after a
    restart, and the directory cannot roll the restarted RD back either."""
    older = stand_in_rd.publish(3, ["a.tim.test", "old.tim.test"])
    first = stand_in_rd.cache()
    await first.refresh()
    newer = stand_in_rd.publish(5, ["a.tim.test"])
    assert await first.refresh() is True
    with stand_in_rd.db.write() as tx:  # the stored JWS is replaced by the older list
        tx.execute("UPDATE federation_list SET jws = ? WHERE id = 1", (older,))
    restarted = stand_in_rd.cache()
    assert restarted.held is None
    assert restarted.floor == 5
    with pytest.raises(TimkitError) as missing:
        restarted.serve(None)
    assert missing.value.errcode == MISSING
    stand_in_rd.directory.jws, stand_in_rd.directory.version = (
        older,
        3,
    )  # the directory offers the older list
    assert await restarted.refresh() is False
    assert restarted.held is None
    stand_in_rd.directory.jws, stand_in_rd.directory.version = newer, 5
    assert await restarted.refresh() is True
    served = restarted.serve(None)
    assert served is not None
    assert served.jws == newer
    # a further restart with an intact store holds version 5 and refuses version 4
    again = stand_in_rd.cache()
    assert again.held is not None
    assert again.held.version == 5
    stand_in_rd.publish(4, ["a.tim.test", "old.tim.test"])
    assert await again.refresh() is False
    assert again.held.version == 5


async def test_ml_123891_a_stored_list_that_no_longer_verifies_is_not_served(
    stand_in_rd: StandInRd,
) -> None:
    """A list an earlier RD stored, signed by a certificate without the list signer role
    (as data directories from before the role hold), is not served after a restart."""
    old_signer = load(
        stand_in_rd.pki.ensure_signing_cert(
            "old-flist", "VZD-FHIR-FList-Signer", curve=ec.BrainpoolP256R1()
        )
    )
    jws = sign_list(old_signer, [old_signer.cert], 7, ["a.tim.test"])
    with pytest.raises(ListVerificationError) as why:
        verify_list(jws, [local_ca(stand_in_rd.pki).cert], "BP256R1", now=datetime.now(UTC))
    assert "no C.FD.SIG" in why.value.message
    with stand_in_rd.db.write() as tx:
        federation_list.save(tx, 7, jws, 0, "2026-01-01T00:00:00+00:00")
    restarted = stand_in_rd.cache()
    assert restarted.held is None
    assert restarted.floor == 7
    stand_in_rd.publish(8, ["a.tim.test"])
    assert await restarted.refresh() is True
    assert restarted.held is not None
    assert restarted.held.version == 8
