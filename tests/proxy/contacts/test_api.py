"""I_TiMessengerContactManagement 1.0.2 through HTTP, mounted at /tim-contact-mgmt/v1.0.2.

Real database (SQLite and PostgreSQL), real OpenID validation against a homeserver stand-in.
Testsuite cases 11.01-11.05 (Freigabeliste: reciprocity, ``start``/``end`` windows, delete)
appear as stage-2 checks after settings were made through the API.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from yarl import URL

from tests.proxy.conftest import ALICE, BOB, SERVER
from tests.proxy.contacts.conftest import MAX_CONTACTS, NOW, Api
from timkit.core.db import Database
from timkit.core.process import free_port
from timkit.proxy.contacts.api import PREFIX, contacts_app
from timkit.proxy.contacts.handlers import ContactsService
from timkit.proxy.openid import OpenIdValidator

CAROL = "@carol:klinik.tim.test"
DAVE = "@dave:klinik.tim.test"


def contact(mxid: Any = CAROL, name: Any = "Carol", start: Any = NOW - 60, **more: Any) -> Any:
    settings: dict[str, Any] = {"start": start}
    settings.update(more)
    return {"displayName": name, "mxid": mxid, "inviteSettings": settings}


async def error_of(response: Any, status: int, code: str | None = None) -> str:
    """Assert ``response`` is the yaml's ``Error`` with ``status``; return its message."""
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"errorCode", "errorMessage"}
    assert isinstance(body["errorMessage"], str)
    assert body["errorMessage"]
    if code is not None:
        assert body["errorCode"] == code
    return str(body["errorMessage"])


async def test_get_info(api: Api) -> None:
    response = await api.client.get(api.url("/"), headers=api.auth())
    assert response.status == 200
    info = await response.json()
    assert info["version"] == "1.0.2"
    assert info["title"]
    assert SERVER in info["description"]
    assert isinstance(info["contact"], str)
    # the mount point without its trailing slash answers the same
    bare = await api.client.get(PREFIX, headers=api.auth())
    assert bare.status == 200
    assert await bare.json() == info


async def test_info_needs_the_token_too(api: Api) -> None:
    """The yaml's security applies to all operations."""
    await error_of(await api.client.get(api.url("/")), 401, "M_MISSING_TOKEN")
    await error_of(await api.client.get(PREFIX), 401, "M_MISSING_TOKEN")
    headers = api.auth("forged")
    await error_of(await api.client.get(PREFIX, headers=headers), 401, "M_UNKNOWN_TOKEN")


async def test_crud_round_trip(api: Api) -> None:
    client = api.client
    empty = await client.get(api.url("/contacts"), headers=api.auth())
    assert empty.status == 200
    assert await empty.json() == {"contacts": []}

    created = await client.post(api.url("/contacts"), json=contact(), headers=api.auth())
    assert created.status == 200
    assert await created.json() == contact()

    listed = await client.get(api.url("/contacts"), headers=api.auth())
    assert await listed.json() == {"contacts": [contact()]}

    one = await client.get(api.url(f"/contacts/{CAROL}"), headers=api.auth())
    assert one.status == 200
    assert await one.json() == contact()

    changed = contact(name="Dr. Carol", start=NOW, end=NOW + 3600)
    updated = await client.put(api.url("/contacts"), json=changed, headers=api.auth())
    assert updated.status == 200
    assert await updated.json() == changed
    again = await client.get(api.url(f"/contacts/{CAROL}"), headers=api.auth())
    assert await again.json() == changed

    deleted = await client.delete(api.url(f"/contacts/{CAROL}"), headers=api.auth())
    assert deleted.status == 204
    assert await deleted.read() == b""
    await error_of(
        await client.get(api.url(f"/contacts/{CAROL}"), headers=api.auth()), 404, "M_NOT_FOUND"
    )
    await error_of(
        await client.delete(api.url(f"/contacts/{CAROL}"), headers=api.auth()), 404, "M_NOT_FOUND"
    )
    assert await (await client.get(api.url("/contacts"), headers=api.auth())).json() == {
        "contacts": []
    }


async def test_list_is_ordered_and_complete(api: Api) -> None:
    for mxid in (DAVE, CAROL, BOB):
        response = await api.client.post(
            api.url("/contacts"), json=contact(mxid, start=1), headers=api.auth()
        )
        assert response.status == 200
    listed = await (await api.client.get(api.url("/contacts"), headers=api.auth())).json()
    assert [c["mxid"] for c in listed["contacts"]] == sorted([BOB, CAROL, DAVE])


async def test_create_existing_is_409(api: Api) -> None:
    await api.client.post(api.url("/contacts"), json=contact(), headers=api.auth())
    message = await error_of(
        await api.client.post(api.url("/contacts"), json=contact(name="other"), headers=api.auth()),
        409,
    )
    assert CAROL in message
    one = await api.client.get(api.url(f"/contacts/{CAROL}"), headers=api.auth())
    assert (await one.json())["displayName"] == "Carol"  # unchanged


async def test_update_missing_is_404(api: Api) -> None:
    await error_of(
        await api.client.put(api.url("/contacts"), json=contact(), headers=api.auth()),
        404,
        "M_NOT_FOUND",
    )


async def test_mxid_path_parameter_encoded_and_raw(api: Api) -> None:
    await api.client.post(api.url("/contacts"), json=contact(), headers=api.auth())
    base = str(api.client.make_url(PREFIX)).rstrip("/")
    for path in (
        "/contacts/%40carol%3Aklinik.tim.test",  # percent-encoded, as generated clients send
        "/contacts/@carol:klinik.tim.test",
        "/contacts/%2540carol%253Aklinik.tim.test",  # encoded twice
        "/contacts/@carol:Klinik.TIM.test",  # server names are case-blind
    ):
        url = URL(base + path, encoded=True)
        async with api.client.session.get(url, headers=api.auth()) as response:
            assert response.status == 200, path
            assert (await response.json())["mxid"] == CAROL
    url = URL(base + "/contacts/%40carol%3Aklinik.tim.test", encoded=True)
    async with api.client.session.delete(url, headers=api.auth()) as response:
        assert response.status == 204


async def test_server_name_is_stored_lower_case(api: Api) -> None:
    response = await api.client.post(
        api.url("/contacts"), json=contact("@carol:Klinik.TIM.test"), headers=api.auth()
    )
    assert (await response.json())["mxid"] == CAROL
    await error_of(
        await api.client.post(api.url("/contacts"), json=contact(), headers=api.auth()), 409
    )


async def test_malformed_mxid_in_path_is_400(api: Api) -> None:
    message = await error_of(
        await api.client.get(api.url("/contacts/carol"), headers=api.auth()), 400
    )
    assert "mxid" in message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mxid": CAROL, "inviteSettings": {"start": 1}}, "displayName"),
        ({"displayName": "C", "inviteSettings": {"start": 1}}, "mxid"),
        ({"displayName": "C", "mxid": CAROL}, "inviteSettings"),
        (contact(name=7), "displayName"),
        (contact(name="x" * 257), "displayName"),
        (contact(mxid=7), "mxid"),
        (contact(mxid="carol"), "mxid"),
        (contact(mxid="@carol"), "mxid"),
        (contact(mxid="@:klinik.tim.test"), "mxid"),
        (contact(mxid="@ca rol:klinik.tim.test"), "mxid"),
        (contact(mxid="@carol:"), "mxid"),
        (contact(mxid="@carol:klinik..tim.test"), "mxid"),
        (contact(mxid="@carol:klinik.tim.test:99999"), "mxid"),
        (contact(mxid="matrix:u/carol:klinik.tim.test"), "mxid"),  # 1.0.2 dropped the URI form
        (contact(mxid="@" + "c" * 250 + ":klinik.tim.test"), "mxid"),
        ({**contact(), "inviteSettings": []}, "inviteSettings"),
        ({**contact(), "inviteSettings": {}}, "inviteSettings.start"),
        (contact(start="1654159585"), "inviteSettings.start"),
        (contact(start=1.5), "inviteSettings.start"),
        (contact(start=True), "inviteSettings.start"),
        (contact(start=None), "inviteSettings.start"),
        (contact(start=-1), "inviteSettings.start"),
        (contact(start=2**63), "inviteSettings.start"),
        (contact(end="never"), "inviteSettings.end"),
        (contact(start=NOW, end=NOW - 1), "inviteSettings.end"),
        ({**contact(), "note": "x"}, "note"),
        (contact(until=5), "inviteSettings.until"),
    ],
)
async def test_invalid_contact_is_400_naming_the_field(api: Api, body: Any, field: str) -> None:
    for method in ("POST", "PUT"):
        response = await api.client.request(
            method, api.url("/contacts"), json=body, headers=api.auth()
        )
        message = await error_of(response, 400)
        assert field in message, message
    listed = await (await api.client.get(api.url("/contacts"), headers=api.auth())).json()
    assert listed == {"contacts": []}


@pytest.mark.parametrize("raw", [b"", b"{", b"[1, 2]", b'"x"', b"null"])
async def test_body_that_is_no_contact_object_is_400(api: Api, raw: bytes) -> None:
    response = await api.client.post(
        api.url("/contacts"),
        data=raw,
        headers=api.auth(**{"Content-Type": "application/json"}),
    )
    await error_of(response, 400)


async def test_deeply_nested_body_is_400_naming_the_depth_limit(api: Api) -> None:
    response = await api.client.post(
        api.url("/contacts"),
        data=b"[" * 20_000 + b"]" * 20_000,
        headers=api.auth(**{"Content-Type": "application/json"}),
    )
    message = await error_of(response, 400, "M_NOT_JSON")
    assert message == "the body is JSON nested deeper than 1024 levels"


async def test_body_too_large_is_413(api: Api) -> None:
    body = contact(name="x" * 70_000)
    await error_of(await api.client.post(api.url("/contacts"), json=body, headers=api.auth()), 413)


async def test_open_end_is_omitted_and_null_end_means_open(api: Api) -> None:
    response = await api.client.post(
        api.url("/contacts"), json=contact(end=None), headers=api.auth()
    )
    assert response.status == 200
    assert "end" not in (await response.json())["inviteSettings"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "M_MISSING_TOKEN"),
        ({"Authorization": "Bearer"}, 401, "M_MISSING_TOKEN"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, 401, "M_MISSING_TOKEN"),
        ({"Authorization": "Bearer forged"}, 401, "M_UNKNOWN_TOKEN"),
        ({"Authorization": "Bearer foreign"}, 403, "M_FORBIDDEN"),
    ],
)
async def test_authentication_errors(
    api: Api, headers: dict[str, str], status: int, code: str
) -> None:
    api.homeserver.tokens["foreign"] = "@mallory:klinik.tim.test"
    requests = [
        ("GET", "/contacts", None),
        ("POST", "/contacts", contact()),
        ("PUT", "/contacts", contact()),
        ("GET", f"/contacts/{CAROL}", None),
        ("DELETE", f"/contacts/{CAROL}", None),
    ]
    for method, path, body in requests:
        response = await api.client.request(method, api.url(path), json=body, headers=headers)
        await error_of(response, status, code)
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    response = await api.client.get(
        api.url("/contacts"), headers={"Authorization": "bearer alice-token"}
    )
    assert response.status == 200


async def test_homeserver_down_is_502(contacts_db: Any) -> None:
    service = ContactsService(contacts_db, max_contacts=5)
    validator = OpenIdValidator(f"http://127.0.0.1:{free_port()}", SERVER, 60)
    outer = web.Application()
    outer.add_subapp(PREFIX, contacts_app(service, validator))
    async with TestClient(TestServer(outer)) as client:
        response = await client.get(PREFIX + "/contacts", headers=Api.auth())
        await error_of(response, 502)
    await validator.close()
    service.close()


async def test_mxid_header_must_name_the_token_user(api: Api) -> None:
    ok = await api.client.get(api.url("/contacts"), headers=api.auth(Mxid=ALICE))
    assert ok.status == 200
    same = await api.client.get(api.url("/contacts"), headers=api.auth(Mxid=ALICE.upper()))
    assert same.status == 403  # localparts are case-sensitive
    upper_server = ALICE.replace(SERVER, SERVER.upper())
    ok2 = await api.client.get(api.url("/contacts"), headers=api.auth(Mxid=upper_server))
    assert ok2.status == 200
    for other in (BOB, "alice", ""):
        response = await api.client.post(
            api.url("/contacts"), json=contact(), headers=api.auth(Mxid=other)
        )
        await error_of(response, 403, "M_FORBIDDEN")
    listed = await (await api.client.get(api.url("/contacts"), headers=api.auth())).json()
    assert listed == {"contacts": []}


async def test_get_contacts_refuses_a_repeated_authorization_header(api: Api) -> None:
    """Two ``Authorization`` headers could be read differently along the way: 401, never a
    guess at one of them (found by the conformance run's probes, issue 14)."""
    await api.client.post(api.url("/contacts"), json=contact(), headers=api.auth())
    for first, second in (("alice", "bob"), ("bob", "alice"), ("alice", "alice")):
        headers = CIMultiDict([("Authorization", f"Bearer {first}-token")])
        headers.add("Authorization", f"Bearer {second}-token")
        response = await api.client.get(api.url("/contacts"), headers=headers)
        message = await error_of(response, 401, "M_UNAUTHORIZED")
        assert "Authorization given 2 times" in message
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_create_contact_setting_refuses_a_repeated_mxid_header(api: Api) -> None:
    headers = CIMultiDict(api.auth(Mxid=ALICE))
    headers.add("Mxid", BOB)
    response = await api.client.post(api.url("/contacts"), json=contact(), headers=headers)
    assert "Mxid given 2 times" in await error_of(response, 400, "M_INVALID_PARAM")
    listed = await (await api.client.get(api.url("/contacts"), headers=api.auth())).json()
    assert listed == {"contacts": []}


@pytest.mark.parametrize(
    ("target", "named"),
    [
        (f"{PREFIX}/contacts/%40carol%3Aklinik.tim.test%00", "control character"),
        (f"{PREFIX}/contacts/%2e%2E", "dot segment"),
        (f"{PREFIX}/./contacts", "dot segment"),
        (f"{PREFIX}//contacts", "empty path segment"),
        (f"{PREFIX}/contacts/%40carol%3Aklinik.tim.test%", "malformed percent escape"),
        (f"{PREFIX}/contacts/%FF", "not UTF-8"),
        (f"http://praxis.tim.test{PREFIX}/contacts", "must be a path"),
    ],
)
async def test_get_contact_refuses_ambiguous_request_targets(
    api: Api, target: str, named: str
) -> None:
    """Targets the proxy cannot read unambiguously are 400 in the API's Error object, sent
    byte for byte over a real socket (issue 14)."""
    await api.client.post(api.url("/contacts"), json=contact(), headers=api.auth())
    assert api.client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", api.client.port)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: praxis.tim.test\r\n"
        "Authorization: Bearer alice-token\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert b"application/json" in head.lower()
    error = orjson.loads(body)
    assert error["errorCode"] == "M_INVALID_PARAM"
    assert named in error["errorMessage"]
    assert "unambiguous request" in error["errorMessage"]


async def test_users_never_see_each_others_settings(api: Api) -> None:
    alice, bob = api.auth("alice"), api.auth("bob")
    await api.client.post(api.url("/contacts"), json=contact(), headers=alice)
    assert await (await api.client.get(api.url("/contacts"), headers=bob)).json() == {
        "contacts": []
    }
    await error_of(await api.client.get(api.url(f"/contacts/{CAROL}"), headers=bob), 404)
    await error_of(await api.client.put(api.url("/contacts"), json=contact(), headers=bob), 404)
    await error_of(await api.client.delete(api.url(f"/contacts/{CAROL}"), headers=bob), 404)
    # Bob may hold his own setting for the same contact, independent of Alice's
    mine = contact(name="Bob's Carol", start=5)
    assert (await api.client.post(api.url("/contacts"), json=mine, headers=bob)).status == 200
    alices = await (await api.client.get(api.url(f"/contacts/{CAROL}"), headers=alice)).json()
    assert alices == contact()
    assert await api.service.allows(ALICE, CAROL)
    assert await api.service.allows(BOB, CAROL)


async def test_max_contacts_is_enforced_per_user(api: Api) -> None:
    for i in range(MAX_CONTACTS):
        response = await api.client.post(
            api.url("/contacts"), json=contact(f"@c{i}:klinik.tim.test"), headers=api.auth()
        )
        assert response.status == 200
    message = await error_of(
        await api.client.post(api.url("/contacts"), json=contact(), headers=api.auth()),
        400,
        "M_RESOURCE_LIMIT_EXCEEDED",
    )
    assert str(MAX_CONTACTS) in message
    # updating an existing one still works; another user is not affected
    response = await api.client.put(
        api.url("/contacts"), json=contact("@c0:klinik.tim.test", name="n"), headers=api.auth()
    )
    assert response.status == 200
    other = await api.client.post(api.url("/contacts"), json=contact(), headers=api.auth("bob"))
    assert other.status == 200
    # after deleting one, there is room again
    await api.client.delete(api.url("/contacts/@c0:klinik.tim.test"), headers=api.auth())
    response = await api.client.post(api.url("/contacts"), json=contact(), headers=api.auth())
    assert response.status == 200


async def test_routing_errors_are_error_objects(api: Api) -> None:
    await error_of(await api.client.get(api.url("/nope"), headers=api.auth()), 404)
    await error_of(await api.client.get(api.url("/contacts/"), headers=api.auth()), 404)
    await error_of(await api.client.get(api.url("/contacts/a/b"), headers=api.auth()), 404)
    response = await api.client.patch(api.url("/contacts"), json=contact(), headers=api.auth())
    await error_of(response, 405)
    assert set(response.headers["Allow"].split(",")) >= {"GET", "POST", "PUT"}
    await error_of(await api.client.post(api.url("/"), headers=api.auth()), 405)
    response = await api.client.delete(api.url(f"/contacts/{CAROL}/x"), headers=api.auth())
    await error_of(response, 404)
    response = await api.client.put(api.url(f"/contacts/{CAROL}"), headers=api.auth())
    await error_of(response, 405)
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "DELETE"}
    # the outer app (and its catch-all) is untouched by the sub-app
    for path in ("/_matrix/client/versions", "/tim-contact-mgmt/v1.0.2x", "/other"):
        outer = await api.client.get(path)
        assert await outer.text() == "outer app", path
        assert outer.headers.get("Cache-Control") != "no-store"


async def test_routing_errors_are_m_unrecognized_like_every_matrix_edge(api: Api) -> None:
    unknown = await api.client.get(api.url("/nope"), headers=api.auth())
    await error_of(unknown, 404, "M_UNRECOGNIZED")
    wrong = await api.client.patch(api.url("/contacts"), json=contact(), headers=api.auth())
    await error_of(wrong, 405, "M_UNRECOGNIZED")
    assert "Allow" in wrong.headers
    assert unknown.headers["Content-Type"].startswith("application/json")


async def test_a_failure_is_a_500_error_object_naming_nothing_of_its_cause(
    api: Api, contacts_db: Database
) -> None:
    with contacts_db.write() as cursor:  # a broken database: the handler's query fails
        cursor.execute("DROP TABLE contacts")
    response = await api.client.get(api.url("/contacts"), headers=api.auth())
    assert await error_of(response, 500, "M_UNKNOWN") == "internal error"
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"


async def test_responses_are_not_cached(api: Api) -> None:
    response = await api.client.get(api.url("/contacts"), headers=api.auth())
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"].startswith("application/json")


async def _post(api: Api, user: str, body: Any) -> None:
    response = await api.client.post(api.url("/contacts"), json=body, headers=api.auth(user))
    assert response.status == 200, await response.text()


async def test_ml_132864_stage_2_both_list_each_other(api: Api) -> None:
    """Testsuite 11.01-11.03: both users list each other, so either may invite the other."""
    await _post(api, "alice", contact(BOB, "Bob"))
    await _post(api, "bob", contact(ALICE, "Alice"))
    assert await api.service.allows(ALICE, BOB)
    assert await api.service.allows(BOB, ALICE)


async def test_ml_132864_stage_2_only_inviter_listed_invitee(api: Api) -> None:
    """Testsuite 11.04/11.05: only the inviter listed the invitee: stage 2 does not allow."""
    await _post(api, "alice", contact(BOB, "Bob"))
    assert not await api.service.allows(BOB, ALICE)  # Alice inviting Bob
    assert await api.service.allows(ALICE, BOB)  # Bob inviting Alice


async def test_ml_132864_stage_2_time_windows(api: Api) -> None:
    await _post(api, "bob", contact(ALICE, start=NOW + 100))  # starts in the future
    assert not await api.service.allows(BOB, ALICE)
    api.clock.now = NOW + 100
    assert await api.service.allows(BOB, ALICE)  # start is inclusive

    update = contact(ALICE, start=NOW - 100, end=NOW - 1)  # ended
    api.clock.now = NOW
    response = await api.client.put(api.url("/contacts"), json=update, headers=api.auth("bob"))
    assert response.status == 200
    assert not await api.service.allows(BOB, ALICE)

    update = contact(ALICE, start=NOW - 100, end=NOW)  # end is inclusive
    await api.client.put(api.url("/contacts"), json=update, headers=api.auth("bob"))
    assert await api.service.allows(BOB, ALICE)
    api.clock.now = NOW + 1
    assert not await api.service.allows(BOB, ALICE)

    update = contact(ALICE, start=NOW - 100)  # open end
    await api.client.put(api.url("/contacts"), json=update, headers=api.auth("bob"))
    api.clock.now = NOW + 10**9
    assert await api.service.allows(BOB, ALICE)


async def test_ml_132864_stage_2_delete_revokes(api: Api) -> None:
    await _post(api, "bob", contact(ALICE, start=0))
    assert await api.service.allows(BOB, ALICE)
    response = await api.client.delete(api.url(f"/contacts/{ALICE}"), headers=api.auth("bob"))
    assert response.status == 204
    assert not await api.service.allows(BOB, ALICE)


async def test_ml_132864_stage_2_is_case_blind_in_server_names_only(api: Api) -> None:
    await _post(api, "bob", contact(ALICE, start=0))
    assert await api.service.allows(BOB.replace(SERVER, SERVER.upper()), ALICE)
    assert await api.service.allows(BOB, ALICE.replace(SERVER, SERVER.upper()))
    assert not await api.service.allows(BOB, ALICE.replace("alice", "Alice"))
    assert not await api.service.allows(BOB, "not-an-mxid")
    assert not await api.service.allows("", ALICE)


async def test_direct_rooms_through_the_service(api: Api) -> None:
    room = f"!dm:{SERVER}"
    assert await api.service.direct_room(room) is None
    assert await api.service.record_direct_room(room, ALICE, BOB) == (ALICE, BOB)
    assert await api.service.record_direct_room(room, ALICE, CAROL) == (ALICE, BOB)
    assert await api.service.direct_room(room) == (ALICE, BOB)
    assert await api.service.forget_direct_room(room)
    assert await api.service.direct_room(room) is None
