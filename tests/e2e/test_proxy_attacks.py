"""The attacks of issue 14 (findings 1, 3, 4 and 7) replayed against the local federation.

Real ``timkit up`` processes: two Synapses behind their Messenger-Proxies, real TLS. Each
test performs the attack as the attack run did and asserts the proxy refuses it before
Synapse, plus, where it proves the spelling is real, that the same spelling does reach
Synapse and change membership when the rules allow it.
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from tests.support.federation import Federation
from tests.support.users import PASSWORD, A, B, User
from timkit.runtime.push_chain import NOTIFY_PATH
from timkit.sdk.push import get_pushers


def _error(response: httpx.Response, status: int, errcode: str = "M_FORBIDDEN") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errcode"] == errcode, body
    return str(body["error"])


def _x_matrix(origin: str, destination: str) -> str:
    return f'X-Matrix origin="{origin}",destination="{destination}",key="ed25519:a",sig="AAAA"'


async def _room(user: User, **body: Any) -> str:
    created = await user.create_room(**body)
    assert created.status_code == 200, created.text
    return str(created.json()["room_id"])


async def _membership(user: User, room_id: str, target: str) -> str | None:
    """``target``'s membership in ``room_id`` as Synapse reports it to ``user``."""
    response = await user.http.get(
        f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.member/{quote(target)}",
        headers=user.auth(),
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return str(response.json()["membership"])


# -- finding 1: %2F in the event id of a federation invite ------------------------------------


async def test_ml_132864_an_invite_with_an_encoded_slash_in_its_event_id_runs_stages_2_and_3(
    users: dict[str, User], federation: Federation
) -> None:
    """B's server (listed) invites a1, who never listed b1 and has no directory entry; the
    event id holds ``%2F`` as room version 3+ event ids do. The proxy's check runs before
    Synapse's signature check, so the unsigned invite proves whether stages 2/3 ran."""
    a1, b1 = users["a1"], users["b1"]
    room_id = f"!attack{uuid.uuid4().hex[:8]}:{B}"
    event = {
        "type": "m.room.member",
        "room_id": room_id,
        "sender": b1.mxid,
        "state_key": a1.mxid,
        "content": {"membership": "invite", "is_direct": True},
    }
    path = f"/_matrix/federation/v2/invite/{quote(room_id, safe='')}/$abc%2F%2Fdef"
    headers = {"Authorization": _x_matrix(B, A)}
    async with httpx.AsyncClient(base_url=a1.url, verify=a1.ssl, timeout=30) as server_b:
        refused = await server_b.put(
            path, json={"room_version": "10", "event": event}, headers=headers
        )
        message = _error(refused, 403)
        assert "ML-132864" in message
        assert "Stufe 3" in message
        # once a1 lists b1 (stage 2), the same request is relayed: Synapse answers it and
        # refuses the missing signature itself
        await a1.allow(b1.mxid)
        relayed = await server_b.put(
            path, json={"room_version": "10", "event": event}, headers=headers
        )
        assert relayed.status_code in (400, 401, 403), relayed.text
        assert "ML-132864" not in relayed.text


# -- finding 3: other spellings of invites and createRoom -------------------------------------


async def test_gemspec_4_3_3_1_1_create_room_invites_at_most_one_user_in_every_spelling(
    users: dict[str, User],
) -> None:
    a1, a2, b1 = users["a1"], users["a2"], users["b1"]
    body = {"invite": [a2.mxid, b1.mxid]}
    for method, path in (
        ("PUT", f"/_matrix/client/v3/createRoom/{uuid.uuid4().hex}"),
        ("PUT", "/_matrix/client/v3/createRoom/"),
        ("POST", "/_matrix/client/unstable/createRoom"),
        ("POST", "/_matrix/client/api/v1/createRoom"),
        ("POST", "/_matrix/client/r0/createRoo%6D"),
    ):
        response = await a1.http.request(method, path, json=body, headers=a1.auth())
        assert "4.3.3.1.1" in _error(response, 403), path
    third_party = await a1.http.put(
        f"/_matrix/client/v3/createRoom/{uuid.uuid4().hex}",
        json={"invite_3pid": [{"id_server": "i", "medium": "email", "address": "x@y.de"}]},
        headers=a1.auth(),
    )
    assert "invite_3pid" in _error(third_party, 403)
    unknown = await a1.http.post("/_matrix/client/v4/createRoom", json=body, headers=a1.auth())
    _error(unknown, 400, "M_UNRECOGNIZED")


async def test_af_10104_no_spelling_invites_a_third_user_into_a_1_to_1_chat(
    users: dict[str, User], federation: Federation
) -> None:
    a1, a2 = users["a1"], users["a2"]
    room_id = await _room(a1, invite=[a2.mxid], is_direct=True)
    room = quote(room_id)
    third = federation.add_user(A, f"third-{uuid.uuid4().hex[:6]}", PASSWORD)
    for method, path, body in (
        ("PUT", f"/_matrix/client/v3/rooms/{room}/invite/{uuid.uuid4().hex}", {"user_id": third}),
        ("POST", f"/_matrix/client/unstable/rooms/{room}/invite", {"user_id": third}),
        ("POST", f"/_matrix/client/api/v1/rooms/{room}/invit%65", {"user_id": third}),
        (
            "PUT",
            f"/_matrix/client/v3/rooms/{room}/state/m.room.member/{quote(third)}",
            {"membership": "invite"},
        ),
    ):
        response = await a1.http.request(method, path, json=body, headers=a1.auth())
        assert "AF_10104" in _error(response, 403), path
    medium = await a1.http.put(
        f"/_matrix/client/v3/rooms/{room}/invite/{uuid.uuid4().hex}",
        json={"id_server": "i", "medium": "email", "address": "x@y.de"},
        headers=a1.auth(),
    )
    _error(medium, 403)
    assert await _membership(a1, room_id, third) is None


async def test_ml_129415_the_put_and_state_spellings_reach_synapse_when_allowed(
    users: dict[str, User],
) -> None:
    """The spellings the attack used are real: Synapse invites through them, so the
    proxy's check on them matters."""
    a1, a2, b1 = users["a1"], users["a2"], users["b1"]
    room_id = await _room(a1)
    room = quote(room_id)
    by_txn = await a1.http.put(
        f"/_matrix/client/v3/rooms/{room}/invite/{uuid.uuid4().hex}",
        json={"user_id": a2.mxid},
        headers=a1.auth(),
    )
    assert by_txn.status_code == 200, by_txn.text
    assert await _membership(a1, room_id, a2.mxid) == "invite"
    outside = await a1.http.put(
        f"/_matrix/client/v3/rooms/{room}/state/m.room.member/{quote('@x:matrix.org')}",
        json={"membership": "invite"},
        headers=a1.auth(),
    )
    assert "ML-129415" in _error(outside, 403)
    await b1.allow(a1.mxid)
    by_state = await a1.http.put(
        f"/_matrix/client/v3/rooms/{room}/state/m.room.member/{quote(b1.mxid)}",
        json={"membership": "invite"},
        headers=a1.auth(),
    )
    assert by_state.status_code == 200, by_state.text
    assert await _membership(a1, room_id, b1.mxid) == "invite"


async def test_admin_membership_endpoints_are_not_served_publicly(users: dict[str, User]) -> None:
    a1, a2 = users["a1"], users["a2"]
    room_id = await _room(a1)
    forced = await a1.http.post(
        f"/_synapse/admin/v1/join/{quote(room_id)}", json={"user_id": a2.mxid}, headers=a1.auth()
    )
    assert "§3.5" in _error(forced, 403)


# -- finding 4: two Authorization headers --------------------------------------------------


async def test_ml_123666_a_second_authorization_header_is_refused(
    federation: Federation, users: dict[str, User]
) -> None:
    tls = ssl.create_default_context(cafile=federation.ca_cert)
    headers = [
        ("Authorization", _x_matrix(A, B)),
        ("Authorization", _x_matrix("evil.tim.test", B)),
    ]
    async with httpx.AsyncClient(base_url=federation.client_url(B), verify=tls) as http:
        response = await http.get(
            "/_matrix/federation/v1/query/profile?user_id=%40x%3Aklinikum-nord.tim.test",
            headers=headers,
        )
    message = _error(response, 401, "M_UNAUTHORIZED")
    assert "ML-123666" in message
    assert "2 times" in message
    a1 = users["a1"]
    twice = await a1.http.get(
        "/_matrix/client/v3/account/whoami",
        headers=[("Authorization", f"Bearer {a1.nio.access_token}")] * 2,
    )
    _error(twice, 401, "M_UNAUTHORIZED")


# -- finding 7: pushers to loopback services --------------------------------------------------


async def test_finding_7_pushers_notify_only_the_providers_push_gateway(
    users: dict[str, User], federation: Federation
) -> None:
    a1 = users["a1"]
    status = federation.status()
    (directory,) = [c for c in status["components"] if c["kind"] == "fhir-directory"]
    gateway = str(status["push_gateway_url"]) + NOTIFY_PATH
    token = str(a1.nio.access_token)

    def pusher(url: str) -> dict[str, Any]:
        return {
            "kind": "http",
            "app_id": "de.timkit.attack",
            "pushkey": "k1",
            "app_display_name": "x",
            "device_display_name": "x",
            "lang": "de",
            "data": {"url": url, "format": "event_id_only"},
        }

    for path, url in (
        ("/_matrix/client/v3/pushers/set", f"{directory['url']}/_matrix/push/v1/notify"),
        ("/_matrix/client/r0/pushers/s%65t", f"{directory['url']}/Endpoint"),
        ("/_matrix/client/unstable/pushers/set", gateway.replace("127.0.0.1", "localhost")),
    ):
        refused = await a1.http.post(path, json=pusher(url), headers=a1.auth())
        assert "§4.3.2" in _error(refused, 403), path
    assert await get_pushers(a1.http, a1.url, token) == []
    allowed = await a1.http.post(
        "/_matrix/client/v3/pushers/set", json=pusher(gateway), headers=a1.auth()
    )
    assert allowed.status_code == 200, allowed.text
    assert [p["data"]["url"] for p in await get_pushers(a1.http, a1.url, token)] == [gateway]
    deleted = await a1.http.post(
        "/_matrix/client/v3/pushers/set",
        json={"kind": None, "app_id": "de.timkit.attack", "pushkey": "k1"},
        headers=a1.auth(),
    )
    assert deleted.status_code == 200, deleted.text
    assert await get_pushers(a1.http, a1.url, token) == []


# -- ambiguous targets ----------------------------------------------------------------------


async def test_targets_with_dot_segments_or_encoded_slashes_in_ids_are_refused(
    users: dict[str, User],
) -> None:
    a1, a2, b1 = users["a1"], users["a2"], users["b1"]
    body = {"invite": [a2.mxid, b1.mxid]}
    dotted = await a1.http.post(
        "/_matrix/client/v3/rooms/x/%2e%2e/%2E%2E/createRoom", json=body, headers=a1.auth()
    )
    assert "dot segment" in _error(dotted, 400, "M_INVALID_PARAM")
    slashed = await a1.http.post(
        "/_matrix/client/v3/rooms/%21a%2Fb%3Ax/invite", json={"user_id": a2.mxid}, headers=a1.auth()
    )
    _error(slashed, 400, "M_INVALID_PARAM")
