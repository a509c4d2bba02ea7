"""What gematik's approval suite expects of a TI-M 1.1.x Messenger-Service's homeserver, on
real Synapses behind their Messenger-Proxies (testsuite map §1: room version, advertised
versions, user directory, media over the v1.3 API), client discovery through well-known and the
raw data of logins, events and client-measured runs (ML-132587, ML-132588, ML-132591)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from nio import JoinResponse, RoomCreateResponse

from tests.support.federation import Federation
from tests.support.matrix import sync_until
from tests.support.users import A, B, User
from tests.support.wait import async_wait_until


async def test_tim_11_af_005_no_matrix_version_above_v1_3_is_advertised(
    users: dict[str, User],
) -> None:
    for user in (users["a1"], users["b1"]):
        response = await user.http.get("/_matrix/client/versions")
        assert response.status_code == 200
        versions = response.json()["versions"]
        assert "v1.3" in versions
        numbered = [v for v in versions if v.startswith("v")]
        assert all(tuple(map(int, v[1:].split("."))) <= (1, 3) for v in numbered), versions


async def test_new_rooms_get_room_version_10(users: dict[str, User]) -> None:
    a1 = users["a1"]
    created = await a1.create_room(name="Teambesprechung")
    assert created.status_code == 200, created.text
    room_id = created.json()["room_id"]
    state = await a1.http.get(
        f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.create", headers=a1.auth()
    )
    assert state.status_code == 200, state.text
    assert state.json()["room_version"] == "10"


async def _search(user: User, term: str) -> list[str]:
    response = await user.post("/_matrix/client/v3/user_directory/search", {"search_term": term})
    assert response.status_code == 200, response.text
    return [r["user_id"] for r in response.json()["results"]]


async def test_ml_123896_the_user_directory_finds_every_local_user_and_no_remote_one(
    federation: Federation, users: dict[str, User]
) -> None:
    a1, b1 = users["a1"], users["b1"]
    colleague = User(federation, A, f"kollegin-{uuid.uuid4().hex[:6]}")
    try:
        # a1 and the colleague share no room: found all the same (search_all_users)
        found: list[str] = []

        async def colleague_found() -> bool:
            found[:] = await _search(a1, colleague.mxid.split(":")[0][1:])
            return colleague.mxid in found

        await async_wait_until(colleague_found, "the colleague in a1's user directory search")
        # b1 shares a room with a1 and is still not listed: remote users never are
        await b1.allow(a1.mxid)
        created = await a1.nio.room_create(invite=[b1.mxid], is_direct=True)
        assert isinstance(created, RoomCreateResponse), created
        assert await sync_until(b1.nio, lambda r: created.room_id in r.rooms.invite)
        assert isinstance(await b1.nio.join(created.room_id), JoinResponse)
        await async_wait_until(colleague_found, "the directory still answering")
        assert b1.mxid not in await _search(a1, b1.mxid.split(":")[0][1:])
    finally:
        await colleague.close()


async def test_media_uploaded_at_one_service_is_fetched_at_the_other_over_the_v1_3_api(
    users: dict[str, User],
) -> None:
    """Testsuite 10.16: a v1.3 client of another organisation downloads an attachment through
    the legacy media API (its homeserver fetches it over federation through both proxies)."""
    a1, b1 = users["a1"], users["b1"]
    content = b"%PDF-1.4 Arztbrief " + uuid.uuid4().bytes
    uploaded = await a1.http.post(
        "/_matrix/media/v3/upload?filename=arztbrief.pdf",
        content=content,
        headers={**a1.auth(), "Content-Type": "application/pdf"},
    )
    assert uploaded.status_code == 200, uploaded.text
    server, _, media_id = uploaded.json()["content_uri"].removeprefix("mxc://").partition("/")
    assert server == A
    legacy = await b1.http.get(f"/_matrix/media/v3/download/{server}/{media_id}")
    assert legacy.status_code == 200, legacy.text
    assert legacy.content == content
    authenticated = await b1.http.get(
        f"/_matrix/client/v1/media/download/{server}/{media_id}", headers=b1.auth()
    )
    assert authenticated.status_code == 200, authenticated.text
    assert authenticated.content == content


async def test_af_10057_a_client_discovers_the_homeserver_from_the_domain(
    federation: Federation, http: httpx.AsyncClient
) -> None:
    """Matrix "Server Discovery": https://<domain>/.well-known/matrix/client names the
    service's client URL (the Messenger-Proxy), and that URL serves the client API."""
    for domain in (A, B):
        url = federation.client_url(domain)
        response = await http.get(f"{url}/.well-known/matrix/client")
        assert response.status_code == 200, response.text
        base_url = response.json()["m.homeserver"]["base_url"]
        assert base_url == url + "/"
        versions = await http.get(base_url + "_matrix/client/versions")
        assert versions.status_code == 200, versions.text
        assert "v1.3" in versions.json()["versions"]
        other = await http.get(f"{url}/.well-known/matrix/client/x")
        assert other.status_code == 404
        assert other.json()["errcode"] == "M_UNRECOGNIZED"


def _runs(federation: Federation, domain: str) -> list[dict[str, Any]]:
    path = federation.data_dir / "services" / domain / "proxy" / "rawdata.jsonl"
    return [orjson.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_ml_132587_ml_132588_ml_132591_runs_are_recorded_at_the_real_proxy(
    federation: Federation, users: dict[str, User]
) -> None:
    """Logins (AF_10057), sent events (AF_10063) and a client's AF_10058 run are raw data of
    the Messenger-Proxy in front of a real Synapse, without personal data."""
    a1 = users["a1"]  # logged in through the proxy by the fixture
    logins = [r for r in _runs(federation, A) if r["use_case"] == "AF_10057"]
    assert ("success", 200) in [(r["result"], r["status"]) for r in logins]
    before = len(_runs(federation, A))
    created = await a1.create_room(name="Rohdaten")
    assert created.status_code == 200, created.text
    room = quote(created.json()["room_id"])
    sent = await a1.http.put(
        f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t{uuid.uuid4().hex}",
        json={"msgtype": "m.text", "body": "Laborwerte"},
        headers=a1.auth(),
    )
    assert sent.status_code == 200, sent.text
    run = {"use_case": "AF_10058", "duration_ms": 950.0, "result": "success", "status": 200}
    delivered = await a1.post("/tim-rawdata/v1/runs", run)
    assert delivered.status_code == 200, delivered.text
    unknown = await a1.http.post(
        "/tim-rawdata/v1/runs", json=run, headers={"Authorization": "Bearer nope"}
    )
    assert unknown.status_code == 401
    new = [r for r in _runs(federation, A)[before:] if r["use_case"] != "AF_10064"]
    assert [(r["use_case"], r["component"], r["status"]) for r in new] == [
        ("AF_10063", "proxy", 200),
        ("AF_10058", "client", 200),
    ]
    text = (federation.data_dir / "services" / A / "proxy" / "rawdata.jsonl").read_text()
    assert a1.mxid.split(":")[0][1:] not in text
    assert A not in text
