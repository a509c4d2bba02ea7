"""AF_10103: authenticate an organisation (Verfahren 1 OIDC, Verfahren 2 KIM) over the JSON API."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.registration.conftest import PASSWORD, AdminSession, RdStack, start_rd
from tests.support.oidc import OidcProvider
from tests.support.slapd import SlapdServer


async def test_af_10103_oidc_end_to_end_on_both_engines(tmp_path: Path, rd_db_url: str) -> None:
    async for rd in start_rd(tmp_path, rd_db_url):
        answer = await rd.oidc_registration("praxis")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["organisation"] == {
            "telematikID": "1-2.58.00000040",
            "professionOID": "1.2.276.0.76.4.50",
            "name": "Praxis Dr. Test",
            "verified_by": "oidc",
        }
        admin = await rd.create_admin(body["registration_token"], "erste")
        me = await admin.request("GET", "/api/v1/account")
        assert me.json() == {
            "username": "erste",
            "telematikID": "1-2.58.00000040",
            "professionOID": "1.2.276.0.76.4.50",
            "organisation": "Praxis Dr. Test",
        }


async def test_ml_128759_organisation_verified_and_stored(rd: RdStack) -> None:
    await rd.registration_token("klinik")
    with rd.ctx.db.read() as cur:
        row = cur.execute(
            "SELECT profession_oid, name, verified_by FROM organisations WHERE telematik_id = ?",
            ("5-2.58.00000050",),
        ).fetchone()
    assert tuple(row) == ("1.2.276.0.76.4.53", "Klinikum Test", "oidc")


async def test_ml_128759_hba_card_refused_naming_the_smcb(rd: RdStack) -> None:
    answer = await rd.oidc_registration("arzt")
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert "Berufs-OID einer Person (HBA)" in error
    assert "SMC-B der Organisation" in error
    assert "ML-128759" in error
    with rd.ctx.db.read() as cur:
        assert cur.execute("SELECT COUNT(*) FROM organisations").fetchone()[0] == 0


async def test_ml_128759_hba_refusal_in_english(rd: RdStack) -> None:
    start = await rd.client.post(rd.url + "/api/v1/organisations/oidc", json={"lang": "en"})
    authorization = httpx.URL(start.json()["authorization_url"])
    chosen = await rd.client.post(
        rd.idp_url + "/auth", data={**dict(authorization.params), "card": "arzt"}
    )
    answer = await rd.client.get(chosen.headers["location"])
    assert answer.status_code == 403
    assert "profession OID of a person (HBA)" in answer.json()["error"]


@pytest.fixture
async def fake_idp(tmp_path: Path) -> AsyncIterator[OidcProvider]:
    """The small test OIDC provider (auto-consent; claims and signature under test control)."""
    provider = OidcProvider(tmp_path / "pki", {"registration": "rd-secret"})
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


async def _with_fake_idp(tmp_path: Path, provider: OidcProvider) -> AsyncIterator[RdStack]:
    async for rd in start_rd(
        tmp_path, idp={"issuer": provider.issuer, "ca_file": provider.ca_file}
    ):
        yield rd


async def _fake_flow(rd: RdStack) -> httpx.Response:
    start = await rd.client.post(rd.url + "/api/v1/organisations/oidc", json={})
    redirect = await rd.client.get(start.json()["authorization_url"])
    assert redirect.status_code == 302
    return await rd.client.get(redirect.headers["location"])


async def test_ml_128759_unknown_oid_refused(tmp_path: Path, fake_idp: OidcProvider) -> None:
    fake_idp.user = {**fake_idp.user, "professionOID": "1.2.3.4.5"}
    async for rd in _with_fake_idp(tmp_path, fake_idp):
        answer = await _fake_flow(rd)
        assert answer.status_code == 403
        assert "keine Institutions-OID" in answer.json()["error"]


async def test_ml_128758_id_token_signature_and_nonce_checked(
    tmp_path: Path, fake_idp: OidcProvider
) -> None:
    fake_idp.user = {**fake_idp.user, "professionOID": "1.2.276.0.76.4.50"}
    async for rd in _with_fake_idp(tmp_path, fake_idp):
        ok = await _fake_flow(rd)
        assert ok.status_code == 200, ok.text  # BP256R1/ES256 ID token accepted

        other = OidcProvider(tmp_path / "pki2", {"registration": "rd-secret"})
        fake_idp.forge = other.sign  # wrong key, unknown kid
        forged = await _fake_flow(rd)
        assert forged.status_code == 401
        assert "ML-128758" in forged.json()["error"]

        fake_idp.forge = lambda claims: fake_idp.sign({**claims, "nonce": "replayed"})
        wrong_nonce = await _fake_flow(rd)
        assert wrong_nonce.status_code == 401
        assert "nonce" in wrong_nonce.json()["error"]

        fake_idp.forge = lambda claims: fake_idp.sign({**claims, "exp": int(time.time()) - 600})
        expired = await _fake_flow(rd)
        assert expired.status_code == 401
        assert "expired" in expired.json()["error"]


async def test_ml_128758_state_is_single_use(rd: RdStack) -> None:
    start = await rd.client.post(rd.url + "/api/v1/organisations/oidc", json={})
    authorization = httpx.URL(start.json()["authorization_url"])
    assert authorization.params["code_challenge_method"] == "S256"
    chosen = await rd.client.post(
        rd.idp_url + "/auth", data={**dict(authorization.params), "card": "praxis"}
    )
    callback = chosen.headers["location"]
    assert (await rd.client.get(callback)).status_code == 200
    replay = await rd.client.get(callback)
    assert replay.status_code in (401, 200)  # unknown state → page error; never a 2nd token
    assert "registration_token" not in replay.text


async def test_ml_128757_further_admins_only_by_invitation(admin_session: AdminSession) -> None:
    rd = admin_session.rd
    again = await rd.oidc_registration("praxis")
    assert again.status_code == 409
    assert "ML-128757" in again.json()["error"]
    invited = await admin_session.request("POST", "/api/v1/invitations")
    assert invited.status_code == 201
    second = await rd.create_admin(invited.json()["registration_token"], "zweite")
    me = await second.request("GET", "/api/v1/account")
    assert me.json()["telematikID"] == admin_session.telematik_id
    # Invitations are single use.
    reuse = await rd.client.post(
        rd.url + "/api/v1/accounts",
        json={
            "registration_token": invited.json()["registration_token"],
            "username": "dritte",
            "password": PASSWORD,
        },
    )
    assert reuse.status_code == 403


async def test_ml_132446_raw_data_per_verification(rd: RdStack) -> None:
    await rd.registration_token("praxis")
    await rd.oidc_registration("arzt")
    records = [r for r in rd.raw_records() if r["use_case"] == "AF_10103"]
    assert [(r["result"], r["status"]) for r in records] == [
        ("success", None),
        ("failure", 403),
    ]
    text = rd.rawdata.read_text()
    for personal in ("1-2.58.00000040", "Praxis", "1-1.58.00000099", "Muster"):
        assert personal not in text
    assert set(records[0]) == {"use_case", "component", "start", "duration_ms", "result", "status"}


async def test_af_10103_kim_end_to_end(rd: RdStack) -> None:
    sent = await rd.client.post(
        rd.url + "/api/v1/organisations/kim", json={"telematikID": "1-2.58.00000041"}
    )
    assert sent.status_code == 202, sent.text
    assert sent.json() == {"sent_to": "z****************@kim.tim.test"}
    mail = rd.mails[-1]
    assert mail["To"] == "zahnarzt-laecheln@kim.tim.test"
    link = rd.last_link()
    token = httpx.URL(link).params["token"]
    page = await rd.client.get(link)  # a link scanner's GET does not use the link up
    assert page.status_code == 200
    confirmed = await rd.client.post(
        rd.url + "/api/v1/organisations/kim/confirm", json={"token": token}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["organisation"]["verified_by"] == "kim"
    assert confirmed.json()["organisation"]["professionOID"] == "1.2.276.0.76.4.51"
    admin = await rd.create_admin(confirmed.json()["registration_token"], "kimadmin")
    assert admin.telematik_id == "1-2.58.00000041"
    reused = await rd.client.post(
        rd.url + "/api/v1/organisations/kim/confirm", json={"token": token}
    )
    assert reused.status_code == 410
    assert "bereits verwendet" in reused.json()["error"]


async def test_af_10103_kim_expired_link_refused(rd: RdStack) -> None:
    await rd.client.post(
        rd.url + "/api/v1/organisations/kim", json={"telematikID": "1-2.58.00000041"}
    )
    token = httpx.URL(rd.last_link()).params["token"]
    with rd.ctx.db.write() as tx:
        tx.execute("UPDATE kim_links SET expires = ?", (int(time.time()) - 1,))
    expired = await rd.client.post(
        rd.url + "/api/v1/organisations/kim/confirm", json={"token": token, "lang": "en"}
    )
    assert expired.status_code == 410
    assert "expired" in expired.json()["error"]


@pytest.mark.parametrize(
    ("telematik_id", "status", "text"),
    [
        ("1-1.58.00000042", 403, "HBA"),
        ("1-2.58.00000043", 422, "no KIM address"),
        ("9-nobody", 404, "no directory entry"),
    ],
)
async def test_af_10103_kim_refusals(
    rd: RdStack, telematik_id: str, status: int, text: str
) -> None:
    answer = await rd.client.post(
        rd.url + "/api/v1/organisations/kim", json={"telematikID": telematik_id}
    )
    assert answer.status_code == status
    assert text in answer.json()["error"]
    assert rd.mails == []


async def test_af_10103_kim_address_from_ldap(tmp_path: Path, slapd: SlapdServer) -> None:
    subtree = slapd.subtree("kim")
    connection = slapd.connect()
    attributes: dict[str, Any] = {
        "telematikID": "3-SMC-B-Testkarte-883110000123",
        "displayName": "Apotheke am Markt",
        "cn": "Apotheke am Markt",
        "uid": "apotheke",
        "professionOID": "1.2.276.0.76.4.54",
        "mail": "apotheke-am-markt@kim.tim.test",
    }
    connection.add(f"uid=apotheke,{subtree}", ["vzdEntry"], attributes)
    directory = {
        "ldap_url": slapd.url,
        "bind_dn": slapd.bind_dn,
        "bind_password": slapd.password,
        "base_dn": subtree,
    }
    async for rd in start_rd(tmp_path, kim={"directory": directory}):
        sent = await rd.client.post(
            rd.url + "/api/v1/organisations/kim",
            json={"telematikID": "3-SMC-B-Testkarte-883110000123"},
        )
        assert sent.status_code == 202, sent.text
        assert rd.mails[-1]["To"] == "apotheke-am-markt@kim.tim.test"
        assert "Apotheke am Markt" in rd.mails[-1].get_payload(decode=True).decode()  # type: ignore[union-attr]


async def test_af_10103_audit_has_no_secrets(admin_session: AdminSession) -> None:
    entries = (await admin_session.request("GET", "/api/v1/audit")).json()["entries"]
    actions = {e["action"] for e in entries}
    assert {"verify.oidc", "account.create", "account.totp.confirm", "account.login"} <= actions
    dumped = json.dumps(entries)
    assert admin_session.password not in dumped
    assert admin_session.totp_secret not in dumped
    assert admin_session.token not in dumped
