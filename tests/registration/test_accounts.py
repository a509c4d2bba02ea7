"""Org-Admin accounts (ML-129853): password policy, TOTP, WebAuthn, lockout, sessions."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
import pytest
from tests.registration.authenticator import SoftAuthenticator
from tests.registration.conftest import PASSWORD, AdminSession, RdStack, start_rd


async def test_ml_129853_admin_account_created_and_active(admin_session: AdminSession) -> None:
    rd = admin_session.rd
    with rd.ctx.db.read() as cur:
        row = cur.execute(
            "SELECT telematik_id, active, totp_confirmed, password_hash FROM accounts"
            " WHERE username = ?",
            ("praxis-admin",),
        ).fetchone()
    assert row[0] == "1-2.58.00000040"
    assert (row[1], row[2]) == (1, 1)
    assert row[3].startswith("$argon2id$")
    assert PASSWORD not in row[3]


async def test_ml_129853_pending_account_cannot_log_in(rd: RdStack) -> None:
    token = await rd.registration_token()
    created = await rd.client.post(
        rd.url + "/api/v1/accounts",
        json={"registration_token": token, "username": "pending", "password": PASSWORD},
    )
    code = pyotp.TOTP(created.json()["totp_secret"]).now()
    login = await rd.client.post(
        rd.url + "/api/v1/login", json={"username": "pending", "password": PASSWORD, "otp": code}
    )
    assert login.status_code == 403
    assert "not active" in login.json()["error"]


@pytest.mark.parametrize(
    ("username", "password", "errcode"),
    [
        ("ok-name", "kurz", "M_WEAK_PASSWORD"),
        ("ok-name", "ok-name-and-more-text", "M_WEAK_PASSWORD"),
        ("ok-name", "aaaaaaaaaaaaaaaaaaaa", "M_WEAK_PASSWORD"),
        ("Bad Name", PASSWORD, "M_INVALID_USERNAME"),
    ],
)
async def test_ml_129853_password_and_username_policy(
    rd: RdStack, username: str, password: str, errcode: str
) -> None:
    token = await rd.registration_token()
    answer = await rd.client.post(
        rd.url + "/api/v1/accounts",
        json={"registration_token": token, "username": username, "password": password},
    )
    assert answer.status_code == 400
    assert answer.json()["errcode"] == errcode


async def test_ml_129853_wrong_2fa_code_refused(admin_session: AdminSession) -> None:
    rd = admin_session.rd
    wrong = str((int(admin_session.code()) + 1) % 1_000_000).zfill(6)
    answer = await rd.client.post(
        rd.url + "/api/v1/login",
        json={"username": admin_session.username, "password": PASSWORD, "otp": wrong},
    )
    assert answer.status_code == 401
    assert answer.json()["error"].startswith("username, password or code wrong")


async def test_ml_129853_totp_code_not_reusable(admin_session: AdminSession) -> None:
    rd = admin_session.rd
    with rd.ctx.db.read() as cur:
        step = cur.execute(
            "SELECT totp_last_step FROM accounts WHERE username = ?", (admin_session.username,)
        ).fetchone()[0]
    replay = pyotp.TOTP(admin_session.totp_secret).at(step * 30)
    answer = await rd.client.post(
        rd.url + "/api/v1/login",
        json={"username": admin_session.username, "password": PASSWORD, "otp": replay},
    )
    assert answer.status_code == 401


async def test_ml_129853_lockout_after_repeated_failures(tmp_path: Path) -> None:
    async for rd in start_rd(tmp_path, accounts={"max_failures": 3, "lockout_seconds": 600}):
        admin = await rd.create_admin(await rd.registration_token(), "sperre")
        for _ in range(2):
            bad = await rd.client.post(
                rd.url + "/api/v1/login",
                json={"username": "sperre", "password": "falsches Passwort!", "otp": "000000"},
            )
            assert bad.status_code == 401
        third = await rd.client.post(
            rd.url + "/api/v1/login",
            json={"username": "sperre", "password": "falsches Passwort!", "otp": "000000"},
        )
        assert third.status_code == 429
        locked = await rd.client.post(
            rd.url + "/api/v1/login",
            json={"username": "sperre", "password": PASSWORD, "otp": admin.code()},
        )
        assert locked.status_code == 429  # even the right credentials, while locked
        assert locked.json()["retry_after_ms"] > 0
        with rd.ctx.db.write() as tx:
            # the lockout ends (clock moved on); the code above was used up while locked
            tx.execute(
                "UPDATE accounts SET locked_until = 0, totp_last_step = 0 WHERE username = 'sperre'"
            )
        admin.last_step = 0
        await admin.login()  # after the lockout the account works again


async def test_ml_129853_session_idle_timeout(admin_session: AdminSession) -> None:
    rd = admin_session.rd
    assert (await admin_session.request("GET", "/api/v1/account")).status_code == 200
    with rd.ctx.db.write() as tx:
        tx.execute("UPDATE sessions SET last_seen = ?", (int(time.time()) - 16 * 60,))
    idle = await admin_session.request("GET", "/api/v1/account")
    assert idle.status_code == 401
    assert idle.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_ml_129853_logout_ends_the_session(admin_session: AdminSession) -> None:
    assert (await admin_session.request("POST", "/api/v1/logout")).status_code == 200
    assert (await admin_session.request("GET", "/api/v1/account")).status_code == 401


async def test_ml_129853_session_absolute_lifetime(admin_session: AdminSession) -> None:
    rd = admin_session.rd
    with rd.ctx.db.write() as tx:
        tx.execute("UPDATE sessions SET expires = ?", (int(time.time()) - 1,))
    assert (await admin_session.request("GET", "/api/v1/account")).status_code == 401


async def test_ml_129853_protected_endpoints_need_a_session(rd: RdStack) -> None:
    for method, path in [
        ("GET", "/api/v1/account"),
        ("POST", "/api/v1/invitations"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/services"),
    ]:
        answer = await rd.client.request(method, rd.url + path)
        assert answer.status_code == 401, path
        assert answer.json()["errcode"] == "M_MISSING_TOKEN"
    forged = await rd.client.get(
        rd.url + "/api/v1/account", headers={"Authorization": "Bearer not-a-session"}
    )
    assert forged.status_code == 401


@pytest.mark.parametrize("attestation", ["none", "packed"])
async def test_ml_129853_webauthn_enrolment_and_login(rd: RdStack, attestation: str) -> None:
    token = await rd.registration_token()
    created = await rd.client.post(
        rd.url + "/api/v1/accounts",
        json={"registration_token": token, "username": "fido", "password": PASSWORD},
    )
    enrolment = created.json()["enrolment_token"]
    key = SoftAuthenticator(rd.url, attestation)
    begin = await rd.client.post(
        rd.url + "/api/v1/webauthn/register/begin", json={"enrolment_token": enrolment}
    )
    assert begin.status_code == 200, begin.text
    options = begin.json()
    finish = await rd.client.post(
        rd.url + "/api/v1/webauthn/register/finish",
        json={"ceremony": options["ceremony"], "credential": key.create(options["publicKey"])},
    )
    assert finish.status_code == 200, finish.text
    assert finish.json() == {"username": "fido", "active": True}

    login = await rd.client.post(
        rd.url + "/api/v1/login/webauthn/begin", json={"username": "fido", "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    assertion = key.get(login.json()["publicKey"])
    session = await rd.client.post(
        rd.url + "/api/v1/login/webauthn/finish",
        json={"ceremony": login.json()["ceremony"], "credential": assertion},
    )
    assert session.status_code == 200, session.text
    bearer = {"Authorization": f"Bearer {session.json()['access_token']}"}
    me = await rd.client.get(rd.url + "/api/v1/account", headers=bearer)
    assert me.json()["username"] == "fido"

    # A replayed assertion (same ceremony) is refused.
    replay = await rd.client.post(
        rd.url + "/api/v1/login/webauthn/finish",
        json={"ceremony": login.json()["ceremony"], "credential": assertion},
    )
    assert replay.status_code == 401


async def test_ml_129853_webauthn_wrong_key_refused(rd: RdStack) -> None:
    token = await rd.registration_token()
    created = await rd.client.post(
        rd.url + "/api/v1/accounts",
        json={"registration_token": token, "username": "fido2", "password": PASSWORD},
    )
    key = SoftAuthenticator(rd.url)
    begin = await rd.client.post(
        rd.url + "/api/v1/webauthn/register/begin",
        json={"enrolment_token": created.json()["enrolment_token"]},
    )
    await rd.client.post(
        rd.url + "/api/v1/webauthn/register/finish",
        json={
            "ceremony": begin.json()["ceremony"],
            "credential": key.create(begin.json()["publicKey"]),
        },
    )
    login = await rd.client.post(
        rd.url + "/api/v1/login/webauthn/begin", json={"username": "fido2", "password": PASSWORD}
    )
    impostor = SoftAuthenticator(rd.url, credential_id=key.credential_id)
    answer = await rd.client.post(
        rd.url + "/api/v1/login/webauthn/finish",
        json={
            "ceremony": login.json()["ceremony"],
            "credential": impostor.get(login.json()["publicKey"]),
        },
    )
    assert answer.status_code == 401
