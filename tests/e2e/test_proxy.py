"""The Messenger-Proxy in the local federation: real Synapses, real TLS, matrix-nio clients.

Each Messenger-Service is Synapse on loopback behind its proxy; the demo organisations'
``@empfang`` users are in the organisation directory (stage 3 allows inviting them), other
users are not (only their Freigabeliste lets someone invite them).
"""

from __future__ import annotations

import ssl
import time
import tomllib
import uuid
from urllib.parse import quote

import httpx
from nio import JoinResponse, RoomCreateResponse, RoomSendResponse

from tests.support.federation import Federation
from tests.support.matrix import messages, sync_until
from tests.support.users import CONTACTS, PASSWORD, A, B, User
from tests.support.wait import async_wait_until


def _error(response: httpx.Response, status: int, errcode: str = "M_FORBIDDEN") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errcode"] == errcode, body
    return str(body["error"])


async def _room(user: User) -> str:
    created = await user.create_room()
    assert created.status_code == 200, created.text
    return str(created.json()["room_id"])


# -- where things listen -----------------------------------------------------------------


def test_client_and_federation_url_are_the_proxy_and_synapse_listens_on_loopback_only(
    federation: Federation,
) -> None:
    status = federation.status()
    service = next(s for s in status["services"] if s["domain"] == B)
    proxy = next(c for c in status["components"] if c["name"] == f"proxy@{B}")
    homeserver = next(c for c in status["components"] if c["name"] == f"homeserver@{B}")
    assert service["client_url"] == service["federation_url"] == proxy["url"]
    assert homeserver["url"].startswith("http://127.0.0.1:")
    assert homeserver["url"] != proxy["url"]
    synapse = (federation.data_dir / "services" / B / "synapse" / "homeserver.yaml").read_text()
    assert "bind_addresses:\n  - 127.0.0.1" in synapse
    assert "tls: false" in synapse
    assert "interception/ca.crt" in synapse  # trusts only its own proxy's interception CA
    health = httpx.get(
        f"{proxy['url']}/health", verify=ssl.create_default_context(cafile=federation.ca_cert)
    ).json()
    assert health["status"] == "ok"
    assert health["federation_list_version"] >= 1


def test_ml_137902_the_proxy_pulls_its_list_from_the_rd_hourly(federation: Federation) -> None:
    config = federation.data_dir / "services" / A / "proxy.toml"
    settings = tomllib.loads(config.read_text())["federation_list"]
    assert settings["url"].endswith("/federation")
    assert settings["interval"] == 3600.0
    assert settings["ttl"] == 72 * 3600.0


# -- client-server: stage 1 -----------------------------------------------------------------


async def test_ml_129415_invite_to_a_domain_outside_the_federation_is_refused(
    users: dict[str, User],
) -> None:
    """Testsuite 06.01/06.02: ``@tim-gematik:matrix.org`` can be invited neither way."""
    a1 = users["a1"]
    room_id = await _room(a1)
    message = _error(await a1.invite(room_id, "@tim-gematik:matrix.org"), 403)
    assert "matrix.org" in message
    assert "ML-129415" in message
    message = _error(await a1.create_room(invite=["@tim-gematik:matrix.org"]), 403)
    assert "matrix.org" in message


async def test_create_room_with_more_than_one_invitee_is_refused(users: dict[str, User]) -> None:
    a1, a2, b1 = users["a1"], users["a2"], users["b1"]
    message = _error(await a1.create_room(invite=[a2.mxid, b1.mxid]), 403)
    assert "at most one" in message
    assert "4.3.3.1.1" in message


async def test_third_party_invites_are_refused(users: dict[str, User]) -> None:
    a1 = users["a1"]
    message = _error(
        await a1.create_room(
            invite_3pid=[{"id_server": "id.example", "medium": "email", "address": "x@example.org"}]
        ),
        403,
    )
    assert "invite_3pid" in message
    room_id = await _room(a1)
    response = await a1.post(
        f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
        {"id_server": "id.example", "medium": "email", "address": "x@example.org"},
    )
    _error(response, 403)


async def test_af_10104_invite_within_the_organisation_and_no_third_user_in_a_1_to_1_chat(
    users: dict[str, User], federation: Federation
) -> None:
    """AF_10104 ML-129414 (both in the room); testsuite 07.07/07.08 (1:1 chat stays 1:1)."""
    a1, a2 = users["a1"], users["a2"]
    created = await a1.create_room(invite=[a2.mxid], is_direct=True)
    assert created.status_code == 200, created.text
    room_id = created.json()["room_id"]
    joined = await a2.nio.join(room_id)
    assert isinstance(joined, JoinResponse), joined
    members = await a1.http.get(
        f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members", headers=a1.auth()
    )
    assert set(members.json()["joined"]) == {a1.mxid, a2.mxid}
    third = User(federation, A, f"third-{uuid.uuid4().hex[:6]}")
    try:
        message = _error(await a1.invite(room_id, third.mxid), 403)
        assert "1:1 chat" in message
    finally:
        await third.close()


# -- server-server: stages 1 to 3 ---------------------------------------------------------------


async def test_ml_132864_cross_organisation_invite_without_directory_entry_is_refused(
    users: dict[str, User],
) -> None:
    """Testsuite 09.14-09.17: b1 is in no directory and has no Freigabeliste entry."""
    a1, b1 = users["a1"], users["b1"]
    room_id = await _room(a1)
    response = await a1.invite(room_id, b1.mxid)
    assert response.status_code == 403, response.text
    assert "Stufe 3" in response.json()["error"]


async def test_ml_132864_stage_3_allows_inviting_a_user_of_the_organisation_directory(
    users: dict[str, User], federation: Federation
) -> None:
    a1 = users["a1"]
    empfang = f"@empfang:{B}"
    federation.add_user(B, "empfang", PASSWORD)
    room_id = await _room(a1)
    response = await a1.invite(room_id, empfang)
    assert response.status_code == 200, response.text


async def test_freigabeliste_reciprocity_and_time_windows(users: dict[str, User]) -> None:
    """Testsuite 11.01-11.05 and ML-132864 stage 2."""
    a1, b1 = users["a1"], users["b1"]
    now = int(time.time())
    # 11.04/11.05: only the inviter listed the invitee: not allowed
    await a1.allow(b1.mxid)
    room_id = await _room(a1)
    _error(await a1.invite(room_id, b1.mxid), 403)
    # a window in the future or in the past does not allow either
    await b1.allow(a1.mxid, start=now + 3600)
    _error(await a1.invite(room_id, b1.mxid), 403)
    token = await b1.openid_token()
    updated = await b1.http.put(
        f"{CONTACTS}/contacts",
        json={
            "displayName": "A1",
            "mxid": a1.mxid,
            "inviteSettings": {"start": now - 7200, "end": now - 3600},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert updated.status_code == 200, updated.text
    _error(await a1.invite(room_id, b1.mxid), 403)
    # 11.01-11.03: b1 lists a1 with a valid window: the invite goes through
    updated = await b1.http.put(
        f"{CONTACTS}/contacts",
        json={"displayName": "A1", "mxid": a1.mxid, "inviteSettings": {"start": now - 60}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert updated.status_code == 200, updated.text
    invited = await a1.invite(room_id, b1.mxid)
    assert invited.status_code == 200, invited.text


async def test_af_10061_af_10062_invite_join_and_messages_across_both_proxies(
    users: dict[str, User],
) -> None:
    """ML-123663 (both joined), ML-123665/ML-123666 (both proxies let the events through),
    ML-123668 (the message is shown)."""
    a1, b1 = users["a1"], users["b1"]
    await b1.allow(a1.mxid)
    await b1.nio.sync(timeout=0)
    created = await a1.nio.room_create(invite=[b1.mxid], name="Konsil", is_direct=True)
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    assert await sync_until(b1.nio, lambda r: room_id in r.rooms.invite)
    joined = await b1.nio.join(room_id)
    assert isinstance(joined, JoinResponse), joined
    await a1.nio.sync(timeout=0)
    sent = await a1.nio.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": "Befund ist da."}
    )
    assert isinstance(sent, RoomSendResponse), sent
    received = await sync_until(b1.nio, messages(room_id))
    assert isinstance(received, list)
    assert [(m.sender, m.body) for m in received] == [(a1.mxid, "Befund ist da.")]
    reply = await b1.nio.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": "Danke!"}
    )
    assert isinstance(reply, RoomSendResponse), reply
    answers = await sync_until(
        a1.nio, lambda r: [m for m in messages(room_id)(r) if m.sender == b1.mxid]
    )
    assert isinstance(answers, list)
    assert [m.body for m in answers] == ["Danke!"]


async def test_ml_123666_the_receiving_proxy_checks_the_origin(federation: Federation) -> None:
    """A forged or missing origin is refused before Synapse; a listed one reaches Synapse,
    which then checks the signature."""
    url = federation.client_url(B)
    path = "/_matrix/federation/v1/query/profile?user_id=%40x%3Aklinikum-nord.tim.test"
    tls = ssl.create_default_context(cafile=federation.ca_cert)
    async with httpx.AsyncClient(base_url=url, verify=tls) as http:
        missing = await http.get(path)
        assert _error(missing, 401, "M_MISSING_TOKEN")
        forged = await http.get(
            path,
            headers={
                "Authorization": f'X-Matrix origin="evil.example.org",destination="{B}",'
                'key="ed25519:a",sig="AAAA"'
            },
        )
        assert "evil.example.org" in _error(forged, 403)
        listed = await http.get(
            path,
            headers={
                "Authorization": f'X-Matrix origin="{A}",destination="{B}",'
                'key="ed25519:a",sig="AAAA"'
            },
        )
        assert listed.status_code == 401  # Synapse: the signature does not verify
        assert "federation" not in listed.json().get("error", "")
        # exempt: no X-Matrix header needed
        assert (await http.get("/_matrix/federation/v1/version")).status_code == 200
        assert (await http.get("/_matrix/key/v2/server")).status_code == 200
        userinfo = await http.get("/_matrix/federation/v1/openid/userinfo?access_token=nope")
        assert userinfo.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_ml_123665_the_sending_proxy_checks_the_destination(
    users: dict[str, User], federation: Federation
) -> None:
    """Synapse asks a server outside the federation: its own forward proxy refuses."""
    a1 = users["a1"]
    proxy = next(c for c in federation.status()["components"] if c["name"] == f"proxy@{A}")

    async def denials() -> float:
        text = (await a1.http.get(f"{proxy['url']}/metrics")).text
        for line in text.splitlines():
            if line.startswith("timkit_proxy_denials_total") and 'listener="forward"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = await denials()
    response = await a1.http.get(
        "/_matrix/client/v3/profile/%40someone%3Anot-in-federation.tim.test", headers=a1.auth()
    )
    assert response.status_code >= 400

    async def denied_more() -> bool:
        return await denials() > before

    assert await async_wait_until(denied_more, "a forward-proxy denial", timeout=30)


# -- the Freigabeliste API with real Matrix OpenID tokens --------------------------------------


async def test_contact_management_api_with_a_real_openid_token(users: dict[str, User]) -> None:
    b1, a1 = users["b1"], users["a1"]
    token = await b1.openid_token()
    auth = {"Authorization": f"Bearer {token}"}
    info = await b1.http.get(f"{CONTACTS}/", headers=auth)
    assert info.status_code == 200
    assert info.json()["version"] == "1.0.2"
    assert (await b1.http.get(f"{CONTACTS}/contacts")).status_code == 401
    contact = {"displayName": "A", "mxid": a1.mxid, "inviteSettings": {"start": 1}}
    created = await b1.http.post(f"{CONTACTS}/contacts", json=contact, headers=auth)
    assert created.status_code == 200
    assert created.json() == contact
    listed = await b1.http.get(f"{CONTACTS}/contacts", headers=auth)
    assert listed.json() == {"contacts": [contact]}
    one = await b1.http.get(f"{CONTACTS}/contacts/{quote(a1.mxid)}", headers=auth)
    assert one.json() == contact
    wrong = await b1.http.get(f"{CONTACTS}/contacts", headers={**auth, "Mxid": a1.mxid})
    assert wrong.status_code == 403
    deleted = await b1.http.delete(f"{CONTACTS}/contacts/{quote(a1.mxid)}", headers=auth)
    assert deleted.status_code == 204
    gone = await b1.http.get(f"{CONTACTS}/contacts/{quote(a1.mxid)}", headers=auth)
    assert gone.status_code == 404
    assert set(gone.json()) == {"errorCode", "errorMessage"}
