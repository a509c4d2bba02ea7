"""The proxy's inbound listener, run by its real composition root, between real servers:
a TLS client in front, a homeserver stand-in behind, an RD stand-in for the list and stage 3.

The end-to-end behaviour with real Synapses is in ``tests/e2e/test_proxy.py``; this covers the
edges a real Synapse does not easily show (byte-identical relaying, streaming, limits,
upstream failures, the stage order).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.proxy.stand_ins import FakeSynapse, Stack, running_stack
from timkit.core.process import free_port
from timkit.proxy.contacts.handlers import Contact, parse_contact

SERVER = "praxis.tim.test"
OTHER = "klinik.tim.test"
ALICE = f"@alice:{SERVER}"
TOKEN_ALICE = "alice-access-token"
GATEWAY = "http://127.0.0.1:8428/_matrix/push/v1/notify"


def _stack(tmp_path: Path, **inbound: Any) -> AbstractAsyncContextManager[Stack]:
    return running_stack(
        tmp_path,
        FakeSynapse(SERVER, users={TOKEN_ALICE: ALICE}, big=b"x" * 3_000_000),
        [SERVER, OTHER],
        inbound={
            "max_body": 5_000_000,
            "checked_body": 10_000,
            "push_gateways": [GATEWAY],
            **inbound,
        },
    )


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with _stack(tmp_path) as running:
        yield running


def _alice() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN_ALICE}"}


def _x_matrix(origin: str, destination: str = SERVER) -> dict[str, str]:
    return {
        "Authorization": f'X-Matrix origin="{origin}",destination="{destination}",'
        'key="ed25519:a",sig="c2ln"'
    }


def _invite_event(sender: str, invitee: str, *, direct: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"membership": "invite"}
    if direct:
        content["is_direct"] = True
    return {
        "room_version": "10",
        "event": {
            "type": "m.room.member",
            "room_id": f"!r:{OTHER}",
            "sender": sender,
            "state_key": invitee,
            "content": content,
        },
    }


# -- relaying ---------------------------------------------------------------------------------


async def test_requests_reach_synapse_byte_identical_with_forwarded_for(stack: Stack) -> None:
    body = b'{"msgtype":"m.text","body":"Gr\\u00fc\\u00dfe"}'
    path = "/_matrix/client/v3/rooms/%21a%3Ab/send/m.room.message/t%3D1?x=1&y=%20"
    response = await stack.http.put(path, content=body, headers=_alice())
    assert response.status_code == 200
    seen = stack.last()
    assert (seen.method, seen.raw_path, seen.body) == ("PUT", path, body)
    assert seen.headers["Authorization"] == f"Bearer {TOKEN_ALICE}"
    assert seen.headers["X-Forwarded-For"] == "127.0.0.1"
    assert seen.headers["X-Forwarded-Proto"] == "https"


async def test_tim_11_af_005_versions_above_v1_3_are_not_advertised(stack: Stack) -> None:
    response = await stack.http.get("/_matrix/client/versions")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "versions": ["r0.5.0", "r0.6.1", "v1.1", "v1.2", "v1.3"],
        "unstable_features": {"org.matrix.msc3916.stable": True},
    }
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert stack.last().raw_path == "/_matrix/client/versions"
    # another spelling of the same path is capped as well (the stand-in decodes as aiohttp does)
    spelled = await stack.http.get("/_matrix/client/%76ersions")
    assert spelled.status_code == 200
    assert spelled.json()["versions"][-1] == "v1.3"


async def test_an_unreadable_versions_answer_is_a_502(stack: Stack) -> None:
    stack.synapse.versions = b'{"versions": "all of them"}'
    response = await stack.http.get("/_matrix/client/versions")
    assert response.status_code == 502
    assert response.json()["errcode"] == "M_UNKNOWN"
    assert "all of them" not in response.text


CLIENT_SECRET = "s3cr3t-of-the-praxis-client"
SUPPORTED = {
    "client_id": "praxis-client",
    "secret_sha256": sha256(CLIENT_SECRET.encode()).hexdigest(),
}


async def test_af_10057_only_supported_clients_reach_the_login(tmp_path: Path) -> None:
    async with _stack(tmp_path, supported_clients=[SUPPORTED]) as checked:
        for path in (
            "/_matrix/client/v3/login",
            "/_matrix/client/api/v1/login",
            "/_matrix/client/v3/log%69n",
            "/_matrix/client/unstable/org.matrix.msc3882/login/get_token",
            "/_matrix/client/v3/register",
        ):
            refused = await checked.http.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["errcode"] == "M_UNAUTHORIZED"
            assert "X-TIM-Client-ID" in refused.json()["error"]
        wrong = await checked.http.post(
            "/_matrix/client/v3/login",
            json={"type": "m.login.password"},
            headers={"X-TIM-Client-ID": "praxis-client", "X-TIM-Client-Secret": "guess"},
        )
        assert wrong.status_code == 401
        for name in ("X-TIM-Client-ID", "X-TIM-Client-Secret"):  # given twice: one copy each
            twice = await checked.raw(
                "POST /_matrix/client/r0/login HTTP/1.1\n"
                "Host: x\n"
                "X-TIM-Client-ID: praxis-client\n"
                f"X-TIM-Client-Secret: {CLIENT_SECRET}\n"
                f"{name}: {'other' if name.endswith('ID') else 'guess'}",
                b"{}",
            )
            assert twice[0] == 401, name
            assert twice[1]["errcode"] == "M_UNAUTHORIZED"
        assert checked.synapse.seen == []
        admitted = await checked.http.post(
            "/_matrix/client/v3/login",
            json={"type": "m.login.password"},
            headers={"X-TIM-Client-ID": "praxis-client", "X-TIM-Client-Secret": CLIENT_SECRET},
        )
        assert admitted.status_code == 200
        assert checked.last().raw_path == "/_matrix/client/v3/login"
        other = await checked.http.get("/_matrix/client/v3/account/whoami", headers=_alice())
        assert other.status_code == 200


async def test_af_10057_without_supported_clients_every_client_logs_in(stack: Stack) -> None:
    response = await stack.http.get("/_matrix/client/v3/login")
    assert response.status_code == 200
    assert stack.last().raw_path == "/_matrix/client/v3/login"


async def test_large_responses_are_streamed_through(stack: Stack) -> None:
    response = await stack.http.get("/big")
    assert response.status_code == 200
    assert response.content == stack.synapse.big


async def test_chunked_uploads_are_streamed_through(stack: Stack) -> None:
    parts = [bytes([65 + i]) * 700_000 for i in range(4)]

    async def upload() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    response = await stack.http.post("/_matrix/media/v3/upload", content=upload())
    assert response.status_code == 200
    assert stack.last().body == b"".join(parts)


async def test_hop_by_hop_headers_stay_and_forwarded_for_grows(stack: Stack) -> None:
    headers = {
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "1",
        "Keep-Alive": "timeout=5",
        "X-Forwarded-For": "10.0.0.1",
        "X-End": "kept",
    }
    response = await stack.http.get("/_matrix/client/v3/profile/x", headers=headers)
    assert response.status_code == 200
    seen = stack.last().headers
    assert "X-Hop" not in seen
    assert "Keep-Alive" not in seen
    assert seen["X-End"] == "kept"
    assert seen["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"


async def test_head_requests_get_the_head_only_and_the_connection_goes_on(stack: Stack) -> None:
    for _ in range(2):
        response = await stack.http.head("/_matrix/client/versions")
        assert response.status_code == 200
        assert response.content == b""
        assert int(response.headers["Content-Length"]) > 0
    assert (await stack.http.get("/big")).content == stack.synapse.big


async def test_bodies_over_the_limit_are_refused_before_synapse(stack: Stack) -> None:
    response = await stack.http.post("/_matrix/media/v3/upload", content=b"x" * 5_000_001)
    assert response.status_code == 413
    assert response.json()["errcode"] == "M_TOO_LARGE"
    assert stack.synapse.seen == []


async def test_synapse_down_is_a_502_in_matrix_json(stack: Stack) -> None:
    stack.proxy.relay.base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    response = await stack.http.get("/_matrix/client/versions")
    assert response.status_code == 502
    assert response.json()["errcode"] == "TIMKIT_UPSTREAM"


# -- client-server: stage 1 -------------------------------------------------------------------


async def test_ml_129415_invite_outside_the_federation_never_reaches_synapse(
    stack: Stack,
) -> None:
    response = await stack.http.post(
        "/_matrix/client/v3/rooms/%21a%3Ab/invite",
        json={"user_id": "@x:matrix.org"},
        headers=_alice(),
    )
    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert "ML-129415" in response.json()["error"]
    assert stack.synapse.seen == []
    ok = await stack.http.post(
        "/_matrix/client/v3/rooms/%21a%3Ab/invite",
        json={"user_id": f"@bob:{OTHER}"},
        headers=_alice(),
    )
    assert ok.status_code == 200


async def test_a_1_to_1_chat_created_through_the_proxy_keeps_its_two_users(stack: Stack) -> None:
    created = await stack.http.post(
        "/_matrix/client/v3/createRoom",
        json={"invite": [f"@bob:{OTHER}"], "is_direct": True},
        headers=_alice(),
    )
    room_id = created.json()["room_id"]
    path = f"/_matrix/client/v3/rooms/{room_id.replace('!', '%21').replace(':', '%3A')}/invite"
    third = await stack.http.post(path, json={"user_id": f"@carol:{SERVER}"}, headers=_alice())
    assert third.status_code == 403
    assert "1:1 chat" in third.json()["error"]
    again = await stack.http.post(path, json={"user_id": f"@bob:{OTHER}"}, headers=_alice())
    assert again.status_code == 200


async def test_checked_bodies_must_be_json_objects_within_the_limit(stack: Stack) -> None:
    path = "/_matrix/client/v3/createRoom"
    assert (await stack.http.post(path, content=b"[1]")).json()["errcode"] == "M_BAD_JSON"
    assert (await stack.http.post(path, content=b"{")).json()["errcode"] == "M_NOT_JSON"
    big = {"name": "x" * 20_000}
    assert (await stack.http.post(path, json=big)).status_code == 413


# -- server-server: stages 1 to 3 -------------------------------------------------------------


async def test_ml_123666_origin_checked_on_every_federation_request(stack: Stack) -> None:
    path = "/_matrix/federation/v1/send/1"
    missing = await stack.http.put(path, json={})
    assert missing.status_code == 401
    assert missing.json()["errcode"] == "M_MISSING_TOKEN"
    foreign = await stack.http.put(path, json={}, headers=_x_matrix("evil.example"))
    assert foreign.status_code == 403
    assert "ML-123666" in foreign.json()["error"]
    elsewhere = await stack.http.put(path, json={}, headers=_x_matrix(OTHER, "other.example"))
    assert elsewhere.status_code == 401
    assert stack.synapse.seen == []
    listed = await stack.http.put(path, content=b'{"pdus":[]}', headers=_x_matrix(OTHER))
    assert listed.status_code == 200
    assert stack.last().body == b'{"pdus":[]}'
    assert stack.last().headers["Authorization"] == _x_matrix(OTHER)["Authorization"]


async def test_exempt_paths_need_no_x_matrix(stack: Stack) -> None:
    for path in (
        "/_matrix/federation/v1/version",
        "/_matrix/key/v2/server",
        "/_matrix/federation/v1/openid/userinfo?access_token=t",
        "/.well-known/matrix/server",
    ):
        assert (await stack.http.get(path)).status_code == 200, path


async def test_ml_132864_stage_2_lets_a_listed_inviter_in_without_asking_stage_3(
    stack: Stack,
) -> None:
    inviter, invitee = f"@doc:{OTHER}", f"@bob:{SERVER}"
    await stack.proxy.contacts.create_contact(invitee, _contact(inviter))
    response = await stack.http.put(
        "/_matrix/federation/v2/invite/%21r%3Aklinik.tim.test/%24e",
        json=_invite_event(inviter, invitee),
        headers=_x_matrix(OTHER),
    )
    assert response.status_code == 200
    assert stack.rd.invite_checks == []


async def test_ml_132864_stage_3_decides_when_the_freigabeliste_does_not(stack: Stack) -> None:
    inviter, invitee = f"@doc:{OTHER}", f"@empfang:{SERVER}"
    path = "/_matrix/federation/v2/invite/%21r%3Aklinik.tim.test/%24e"
    refused = await stack.http.put(
        path, json=_invite_event(inviter, invitee), headers=_x_matrix(OTHER)
    )
    assert refused.status_code == 403
    assert "Stufe 3" in refused.json()["error"]
    assert "ML-132864" in refused.json()["error"]
    stack.rd.allowed_invites.add((inviter, invitee))
    allowed = await stack.http.put(
        path, json=_invite_event(inviter, invitee, direct=True), headers=_x_matrix(OTHER)
    )
    assert allowed.status_code == 200
    assert stack.rd.invite_checks == [(inviter, invitee), (inviter, invitee)]
    assert await stack.proxy.contacts.direct_room(f"!r:{OTHER}") == (inviter, invitee)


async def test_stage_3_unreachable_refuses_the_invite(stack: Stack) -> None:
    stack.rd.invite_down = True
    response = await stack.http.put(
        "/_matrix/federation/v1/invite/%21r%3Aklinik.tim.test/%24e",
        json=_invite_event(f"@doc:{OTHER}", f"@bob:{SERVER}")["event"],
        headers=_x_matrix(OTHER),
    )
    assert response.status_code == 502
    assert stack.synapse.seen == []


async def test_an_invite_whose_sender_is_not_of_the_origin_is_refused(stack: Stack) -> None:
    response = await stack.http.put(
        "/_matrix/federation/v2/invite/%21r%3Aklinik.tim.test/%24e",
        json=_invite_event(f"@doc:{SERVER}", f"@bob:{SERVER}"),
        headers=_x_matrix(OTHER),
    )
    assert response.status_code == 403


# -- the proxy's own endpoints ----------------------------------------------------------------


async def test_health_and_metrics(stack: Stack) -> None:
    health = await stack.http.get("/health")
    assert health.json()["status"] == "ok"
    assert health.json()["federation_list_version"] == 1
    await stack.http.put("/_matrix/federation/v1/send/1", json={}, headers=_x_matrix("evil.x"))
    metrics = (await stack.http.get("/metrics")).text
    assert 'timkit_proxy_denials_total{listener="federation",rule="ML-123666"} 1.0' in metrics
    assert "timkit_proxy_federation_list_version 1.0" in metrics
    assert "timkit_proxy_upstream_seconds_bucket" in metrics


async def test_health_is_503_once_the_list_is_outdated(stack: Stack) -> None:
    gate = stack.proxy.gate
    assert gate.held is not None
    refreshed = gate.held.refreshed
    gate.clock = lambda: refreshed + gate.settings.ttl + 1
    health = await stack.http.get("/health")
    assert health.status_code == 503
    assert health.json()["errcode"] == "TIM_FEDERATION_LIST_OUTDATED"
    blocked = await stack.http.put(
        "/_matrix/federation/v1/send/1", json={}, headers=_x_matrix(OTHER)
    )
    assert blocked.status_code == 503


def _contact(mxid: str) -> Contact:
    return parse_contact({"displayName": "Doc", "mxid": mxid, "inviteSettings": {"start": 0}})


async def test_ml_132592_rohdaten_for_invites_transactions_and_list_pulls(
    stack: Stack, tmp_path: Path
) -> None:
    """ML-132589 (AF_10064), ML-132590 (AF_10104), ML-132592 (AF_10061), ML-132593 (AF_10062):
    one record per run, without personal data."""
    await stack.http.post(
        "/_matrix/client/v3/rooms/%21a%3Ab/invite", json={"user_id": f"@c:{SERVER}"}
    )
    await stack.http.post(
        "/_matrix/client/v3/rooms/%21a%3Ab/invite", json={"user_id": "@x:matrix.org"}
    )
    await stack.http.put(
        "/_matrix/federation/v1/send/t1", json={"pdus": []}, headers=_x_matrix(OTHER)
    )
    lines = (tmp_path / "proxy" / "rawdata.jsonl").read_text().splitlines()
    records = [orjson.loads(line) for line in lines]
    runs = [(r["use_case"], r["result"], r["status"]) for r in records]
    assert ("AF_10064", "success", None) in runs
    assert ("AF_10104", "success", 200) in runs
    assert ("AF_10061", "failure", 403) in runs
    assert ("AF_10062", "success", 200) in runs
    for record in records:
        assert set(record) == {"use_case", "component", "start", "duration_ms", "result", "status"}
        assert record["component"] == "proxy"
    text = "\n".join(lines)
    assert SERVER not in text
    assert "matrix.org" not in text


# -- every spelling of a membership change (issue 14) -----------------------------------------

INVITE_SPELLINGS = [
    ("POST", "/_matrix/client/v3/rooms/%21a%3Ab/invite"),
    ("POST", "/_matrix/client/r0/rooms/%21a%3Ab/invite"),
    ("POST", "/_matrix/client/api/v1/rooms/%21a%3Ab/invite"),
    ("POST", "/_matrix/client/unstable/rooms/%21a%3Ab/invite"),
    ("POST", "/_matrix/client/unstable/org.example.msc1/rooms/%21a%3Ab/invite"),
    ("PUT", "/_matrix/client/v3/rooms/%21a%3Ab/invite/txn1"),
    ("PUT", "/_matrix/client/v3/rooms/%21a%3Ab/invite/"),
    ("POST", "/_matrix/client/v3/rooms/%21a%3Ab/invite/"),
    ("POST", "/_matrix/client/v3/rooms/%21a%3Ab/invit%65"),
    ("POST", "/_matrix/client/v3/rooms/!a:b/%69nvite?x=1"),
    ("POST", "/_matrix/client/%763/rooms/!a:b/invite"),
]


@pytest.mark.parametrize(("method", "path"), INVITE_SPELLINGS)
async def test_ml_129415_every_spelling_of_an_invite_is_checked(
    stack: Stack, method: str, path: str
) -> None:
    response = await stack.http.request(
        method, path, json={"user_id": "@x:matrix.org"}, headers=_alice()
    )
    assert response.status_code == 403, response.text
    assert "ML-129415" in response.json()["error"]
    assert stack.synapse.seen == []


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/client/v3/rooms/%21a%3Ab/state/m.room.member/%40x%3Amatrix.org",
        "/_matrix/client/r0/rooms/!a:b/state/m.room.memb%65r/@x:matrix.org",
        "/_matrix/client/unstable/rooms/!a:b/state/m.room.member/@x:matrix.org/",
    ],
)
async def test_ml_129415_a_member_state_event_with_membership_invite_is_an_invite(
    stack: Stack, path: str
) -> None:
    response = await stack.http.put(path, json={"membership": "invite"}, headers=_alice())
    assert response.status_code == 403, response.text
    assert "ML-129415" in response.json()["error"]
    assert stack.synapse.seen == []


async def test_af_10104_no_spelling_invites_a_third_user_into_a_1_to_1_chat(stack: Stack) -> None:
    created = await stack.http.post(
        "/_matrix/client/v3/createRoom",
        json={"invite": [f"@bob:{OTHER}"], "is_direct": True},
        headers=_alice(),
    )
    room = created.json()["room_id"].replace("!", "%21").replace(":", "%3A")
    carol = f"@carol:{SERVER}"
    for method, path, body in (
        ("PUT", f"/_matrix/client/v3/rooms/{room}/invite/t1", {"user_id": carol}),
        ("POST", f"/_matrix/client/unstable/rooms/{room}/invite", {"user_id": carol}),
        ("PUT", f"/_matrix/client/v3/rooms/{room}/state/m.room.member/{carol}", None),
    ):
        document = body or {"membership": "invite"}
        response = await stack.http.request(method, path, json=document, headers=_alice())
        assert response.status_code == 403, path
        assert "AF_10104" in response.json()["error"]
    assert len(stack.synapse.seen) == 1  # only the createRoom


@pytest.mark.parametrize(
    ("method", "path", "body", "rule"),
    [
        ("PUT", "/_matrix/client/v3/createRoom/t1", {"invite": ["@a:x", "@b:x"]}, "§4.3.3.1.1"),
        ("PUT", "/_matrix/client/v3/createRoom/", {"invite": ["@a:x", "@b:x"]}, "§4.3.3.1.1"),
        ("POST", "/_matrix/client/api/v1/createRoom", {"invite": ["@a:x", "@b:x"]}, "§4.3.3.1.1"),
        ("POST", "/_matrix/client/unstable/createRoo%6D", {"invite": ["@a:x", "@b:x"]}, "§4.3"),
        (
            "PUT",
            "/_matrix/client/r0/createRoom/t2",
            {"invite_3pid": [{"medium": "email", "address": "a@b"}]},
            "§3.5.1.1",
        ),
        (
            "POST",
            "/_matrix/client/v3/createRoom",
            {"initial_state": [{"type": "m.room.member", "state_key": "@a:x", "content": {}}]},
            "§4.3.3.1.1",
        ),
        (
            "PUT",
            "/_matrix/client/v3/rooms/!a:b/invite/t3",
            {"medium": "email", "address": "a@b", "id_server": "i"},
            "§3.5.1.1",
        ),
        ("POST", "/_matrix/client/v3/join/!a:b", {"third_party_signed": {}}, "§3.5.1.1"),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/join/t4", {"third_party_signed": {}}, "§3.5.1.1"),
        (
            "PUT",
            "/_matrix/client/v3/rooms/!a:b/state/m.room.third_party_invite/tok",
            {"display_name": "x"},
            "§3.5.1.1",
        ),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/send/m.room.member/t5", {}, "§3.5"),
        ("POST", "/_synapse/admin/v1/join/!a:b", {"user_id": "@c:x"}, "§3.5"),
        ("POST", "/_synapse/admin/v1/rooms/!a:b/make_room_admin", {}, "§3.5"),
        ("DELETE", "/_synapse/admin/v2/rooms/!a:b", {"new_room_user_id": "@c:x"}, "§3.5"),
        ("PUT", "/_synapse/admin/v1/send_server_notice/t6", {"user_id": "@c:x"}, "§3.5"),
    ],
)
async def test_membership_changes_the_check_cannot_allow_are_refused(
    stack: Stack, method: str, path: str, body: dict[str, Any], rule: str
) -> None:
    response = await stack.http.request(method, path, json=body, headers=_alice())
    assert response.status_code == 403, response.text
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert rule in response.json()["error"]
    assert stack.synapse.seen == []


async def test_joins_leaves_and_reads_of_membership_reach_synapse(stack: Stack) -> None:
    for method, path, body in (
        ("POST", "/_matrix/client/v3/join/%21a%3Ab", {}),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/leave/t1", {}),
        ("POST", "/_matrix/client/v3/rooms/!a:b/kick", {"user_id": f"@c:{SERVER}"}),
        (
            "PUT",
            "/_matrix/client/v3/rooms/!a:b/state/m.room.member/" + ALICE,
            {"membership": "join"},
        ),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/state/m.room.topic", {"topic": "t"}),
        ("PUT", "/_matrix/client/v3/rooms/!a:b/send/m.room.message/t2", {"body": "x"}),
        ("GET", "/_matrix/client/v3/rooms/!a:b/state/m.room.member/@x:matrix.org", None),
        ("GET", "/_synapse/admin/v1/rooms/!a:b", None),
    ):
        response = await stack.http.request(method, path, json=body, headers=_alice())
        assert response.status_code == 200, (path, response.text)
        assert stack.last().raw_path == path


async def test_a_join_on_behalf_of_another_user_is_refused(stack: Stack) -> None:
    path = f"/_matrix/client/v3/rooms/!a:b/state/m.room.member/@bob:{SERVER}"
    response = await stack.http.put(path, json={"membership": "join"}, headers=_alice())
    assert response.status_code == 403
    assert "on behalf of" in response.json()["error"]
    assert stack.synapse.seen == []


async def test_membership_paths_under_unknown_versions_are_refused(stack: Stack) -> None:
    for path in ("/_matrix/client/v4/createRoom", "/_matrix/client/v3.0/rooms/!a:b/invite"):
        response = await stack.http.post(path, json={"invite": []}, headers=_alice())
        assert response.status_code == 400
        assert response.json()["errcode"] == "M_UNRECOGNIZED"
    assert stack.synapse.seen == []


@pytest.mark.parametrize(
    "target",
    [
        "/_matrix/client/v3/rooms/%21a%3Ab/%2e%2e/%2e%2e/createRoom",
        "/_matrix/client/v3/rooms/!a:b/../../createRoom",
        "/_matrix/client/v3//createRoom",
        "/_matrix/client/v3/rooms/%21a%00/invite",
        "/_matrix/client/v3/rooms/%21a%2Fb/invite",
        "/_matrix/client/v3/rooms/%zz/invite",
        "https://praxis.tim.test/_matrix/client/v3/createRoom",
    ],
)
async def test_ambiguous_targets_are_refused_never_relayed(stack: Stack, target: str) -> None:
    status, document = await stack.raw(
        f"POST {target} HTTP/1.1\nHost: {SERVER}\nAuthorization: Bearer {TOKEN_ALICE}",
        b'{"invite": ["@a:x", "@b:x"]}',
    )
    assert status == 400, document
    assert document["errcode"] == "M_INVALID_PARAM"
    assert stack.synapse.seen == []


async def test_a_repeated_authorization_header_is_refused(stack: Stack) -> None:
    federation_status, federation_error = await stack.raw(
        "PUT /_matrix/federation/v1/send/t1 HTTP/1.1\n"
        f"Host: {SERVER}\n"
        f"{_header(_x_matrix(OTHER))}\n"
        f"{_header(_x_matrix('evil.tim.test'))}",
        b'{"pdus": []}',
    )
    assert federation_status == 401
    assert "ML-123666" in federation_error["error"]
    client_status, client_error = await stack.raw(
        "GET /_matrix/client/v3/account/whoami HTTP/1.1\n"
        f"Host: {SERVER}\nAuthorization: Bearer a\nauthorization: Bearer b"
    )
    assert client_status == 401
    assert "given 2 times" in client_error["error"]
    assert stack.synapse.seen == []


def _header(headers: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in headers.items())


# -- server-server: every spelling of an invite or membership (issue 14) ----------------------


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/federation/v2/invite/%21r%3Aklinik.tim.test/%24abc%2F%2Fdef",
        "/_matrix/federation/v2/invite/!r:klinik.tim.test/$abc%2Fdef",
        "/_matrix/federation/v1/invite/!r:klinik.tim.test/$abc%2fdef",
        "/_matrix/federation/v2/invit%65/!r:klinik.tim.test/$e",
        "/_matrix/f%65deration/v2/invite/!r:klinik.tim.test/$e",
        "/_matrix/federation/v2/invite/!r:klinik.tim.test/$e/",
    ],
)
async def test_ml_132864_stages_2_and_3_run_whatever_the_encoding(stack: Stack, path: str) -> None:
    inviter, invitee = f"@doc:{OTHER}", f"@empfang:{SERVER}"
    invite = _invite_event(inviter, invitee)
    body = invite if "/v2/" in path else invite["event"]
    response = await stack.http.put(path, json=body, headers=_x_matrix(OTHER))
    assert response.status_code == 403, response.text
    assert "ML-132864" in response.json()["error"]
    assert stack.rd.invite_checks == [(inviter, invitee)]
    assert stack.synapse.seen == []


async def test_federation_third_party_invites_are_refused(stack: Stack) -> None:
    for method, path in (
        ("PUT", "/_matrix/federation/v1/exchange_third_party_invite/%21r%3Ax"),
        ("POST", "/_matrix/federation/v1/3pid/onbind"),
    ):
        response = await stack.http.request(method, path, json={}, headers=_x_matrix(OTHER))
        assert response.status_code == 403
        assert "third-party" in response.json()["error"]
    assert stack.synapse.seen == []


async def test_ml_123666_a_server_joins_knocks_and_leaves_only_for_its_own_users(
    stack: Stack,
) -> None:
    room = f"!r:{SERVER}"
    foreign = await stack.http.get(
        f"/_matrix/federation/v1/make_join/{room}/@bob:{SERVER}", headers=_x_matrix(OTHER)
    )
    assert foreign.status_code == 403
    assert "ML-123666" in foreign.json()["error"]
    event = {
        "type": "m.room.member",
        "room_id": room,
        "sender": f"@bob:{SERVER}",
        "state_key": f"@bob:{SERVER}",
        "content": {"membership": "join"},
    }
    forged = await stack.http.put(
        f"/_matrix/federation/v2/send_join/{room}/$e", json=event, headers=_x_matrix(OTHER)
    )
    assert forged.status_code == 403
    assert stack.synapse.seen == []
    own = f"@doc:{OTHER}"
    allowed = await stack.http.get(
        f"/_matrix/federation/v1/make_knock/{room}/{own}", headers=_x_matrix(OTHER)
    )
    assert allowed.status_code == 200
    joined = await stack.http.put(
        f"/_matrix/federation/v2/send_join/{room}/$e%2Fx",
        json={**event, "sender": own, "state_key": own},
        headers=_x_matrix(OTHER),
    )
    assert joined.status_code == 200
    assert stack.last().raw_path == f"/_matrix/federation/v2/send_join/{room}/$e%2Fx"


# -- pushers (issue 14, finding 7) -------------------------------------------------------------


def _pusher(url: str | None, kind: str | None = "http") -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind, "app_id": "a", "pushkey": "k"}
    if kind is not None:
        body |= {"app_display_name": "a", "device_display_name": "d", "lang": "de"}
        body["data"] = {"url": url, "format": "event_id_only"}
    return body


@pytest.mark.parametrize(
    ("path", "url", "kind"),
    [
        ("/_matrix/client/v3/pushers/set", "http://127.0.0.1:8490/fhir/Endpoint", "http"),
        ("/_matrix/client/r0/pushers/set", "http://127.0.0.1:8490/_matrix/push/v1/notify", "http"),
        ("/_matrix/client/unstable/pushers/s%65t", "http://evil.example/notify", "http"),
        ("/_matrix/client/api/v1/pushers/set", GATEWAY + "?x=1", "http"),
        (
            "/_matrix/client/v3/pushers/set",
            "http://user@127.0.0.1:8428/_matrix/push/v1/notify",
            "http",
        ),
        ("/_matrix/client/v3/pushers/set/", None, "http"),
        ("/_matrix/client/v3/pushers/set", GATEWAY, "email"),
    ],
)
async def test_pushers_notify_only_the_providers_push_gateway(
    stack: Stack, path: str, url: str | None, kind: str
) -> None:
    response = await stack.http.post(path, json=_pusher(url, kind), headers=_alice())
    assert response.status_code == 403, response.text
    assert "§4.3.2" in response.json()["error"]
    assert stack.synapse.seen == []


async def test_pushers_to_the_gateway_and_deletions_reach_synapse(stack: Stack) -> None:
    for url in (GATEWAY, "HTTP://127.0.0.1:8428/_matrix/push/v1/notify"):
        response = await stack.http.post(
            "/_matrix/client/v3/pushers/set", json=_pusher(url), headers=_alice()
        )
        assert response.status_code == 200
    deleted = await stack.http.post(
        "/_matrix/client/r0/pushers/set", json=_pusher(None, None), headers=_alice()
    )
    assert deleted.status_code == 200
    assert len(stack.synapse.seen) == 3


async def test_ml_132590_member_state_invites_are_recorded(stack: Stack, tmp_path: Path) -> None:
    await stack.http.put(
        "/_matrix/client/v3/rooms/!a:b/state/m.room.member/@x:matrix.org",
        json={"membership": "invite"},
    )
    await stack.http.put(
        "/_matrix/client/v3/rooms/!a:b/invite/t1", json={"user_id": f"@c:{SERVER}"}
    )
    lines = (tmp_path / "proxy" / "rawdata.jsonl").read_text().splitlines()
    runs = [(r["use_case"], r["status"]) for r in map(orjson.loads, lines)]
    assert ("AF_10061", 403) in runs
    assert ("AF_10104", 200) in runs


def _transaction(*pdus: dict[str, Any]) -> dict[str, Any]:
    return {"origin": OTHER, "origin_server_ts": 1, "pdus": list(pdus), "edus": []}


async def test_ml_132864_an_invite_pdu_in_a_transaction_passes_stages_2_and_3(
    stack: Stack,
) -> None:
    """A server already in a room could send the invite PDU of a local user in /send,
    past /invite: the transaction is refused unless stage 2 or 3 allows the invite."""
    inviter, invitee = f"@doc:{OTHER}", f"@empfang:{SERVER}"
    invite = _invite_event(inviter, invitee)["event"]
    message = {"type": "m.room.message", "room_id": f"!r:{OTHER}", "sender": inviter}
    path = "/_matrix/federation/v1/send/t1"
    refused = await stack.http.put(
        path, json=_transaction(message, invite), headers=_x_matrix(OTHER)
    )
    assert refused.status_code == 403, refused.text
    assert "ML-132864" in refused.json()["error"]
    assert stack.synapse.seen == []
    stack.rd.allowed_invites.add((inviter, invitee))
    allowed = await stack.http.put(
        path, json=_transaction(message, invite), headers=_x_matrix(OTHER)
    )
    assert allowed.status_code == 200
    remote = {**invite, "state_key": f"@x:{OTHER}"}
    others = await stack.http.put(
        "/_matrix/federation/v1/send/t2", json=_transaction(remote), headers=_x_matrix(OTHER)
    )
    assert others.status_code == 200
    assert stack.rd.invite_checks == [(inviter, invitee), (inviter, invitee)]
