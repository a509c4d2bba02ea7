"""The SDK's Freigabeliste and QR contact exchange (AF_10061) against the local federation:
real Synapses behind their Messenger-Proxies, real TLS, the proxies' contact management.

B's Freigabeliste decides whether A (another organisation, in no directory) may invite B
(ML-132864 stage 2); the refused invite surfaces as a TimkitError 403 of the SDK.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.users import User
from timkit.client.contacts import Contact, Contacts, accept_scanned
from timkit.client.matrix_api import MatrixApi, segment
from timkit.client.openid import OpenIdToken, request_openid_token
from timkit.client.qr import decode_png, qr_png
from timkit.client.vcard import make_vcard, own_card, parse_vcard
from timkit.core.errors import TimkitError


class Actor:
    """A logged-in test user seen through the SDK: its Matrix API and its Freigabeliste."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.api = MatrixApi(user.http, user.url, user.nio.access_token)
        self.tokens_issued = 0
        self.contacts = Contacts(user.http, user.url, user.mxid, self.openid)

    async def openid(self) -> OpenIdToken:
        self.tokens_issued += 1
        return await request_openid_token(self.api, self.user.mxid)

    async def room(self) -> str:
        created = await self.api.call("POST", "/_matrix/client/v3/createRoom", json={})
        return str(created["room_id"])

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.api.call(
            "POST",
            f"/_matrix/client/v3/rooms/{segment(room_id)}/invite",
            json={"user_id": user_id},
        )


async def _refused(actor: Actor, room_id: str, invitee: str) -> TimkitError:
    with pytest.raises(TimkitError) as raised:
        await actor.invite(room_id, invitee)
    assert (raised.value.status, raised.value.errcode) == (403, "M_FORBIDDEN")
    return raised.value


async def test_af_10061_qr_round_trip_adds_contact(users: dict[str, User]) -> None:
    """A shows the QR code of its vCard, B scans and confirms it: A is on B's Freigabeliste
    and A's invite across organisations goes through; before, the proxy refused it."""
    a, b = Actor(users["a1"]), Actor(users["b1"])
    room_id = await a.room()
    await _refused(a, room_id, b.user.mxid)
    # A: the QR code of its own card
    png = qr_png(make_vcard(own_card(a.user.mxid, "Sonnenschein, Anna")))
    # B: scan, show name and MXID, confirm, accept
    card = parse_vcard(decode_png(png))
    assert card.mxid == a.user.mxid
    assert card.formatted_name() == "Anna Sonnenschein"
    accepted = await accept_scanned(b.contacts, card)
    assert (accepted.mxid, accepted.display_name, accepted.end) == (
        a.user.mxid,
        "Sonnenschein, Anna",
        None,
    )
    assert await b.contacts.list() == (accepted,)
    await a.invite(room_id, b.user.mxid)


async def test_freigabeliste_list_add_update_remove_through_the_proxy(
    users: dict[str, User],
) -> None:
    b, a1, a2 = Actor(users["b1"]), users["a1"].mxid, users["a2"].mxid
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    end = start + timedelta(days=30)
    first = await b.contacts.add(a1, "Sonnenschein, Anna", start, end)
    assert first == Contact(a1, "Sonnenschein, Anna", start, end)
    second = await b.contacts.add(a2, "Sonnenschein, Bert")
    assert set(await b.contacts.list()) == {first, second}
    assert await b.contacts.get(a1) == first
    updated = await b.contacts.update(a1, "Sonnenschein, Anna (Praxis)", start)
    assert updated == Contact(a1, "Sonnenschein, Anna (Praxis)", start, None)
    await b.contacts.remove(a2)
    assert await b.contacts.list() == (updated,)
    with pytest.raises(TimkitError) as raised:
        await b.contacts.get(a2)
    assert raised.value.status == 404
    with pytest.raises(TimkitError) as raised:
        await b.contacts.add(a1, "twice")
    assert raised.value.status == 409
    assert b.tokens_issued == 1  # one OpenID token served all eight requests


async def test_a_time_window_in_the_past_refuses_the_invite(users: dict[str, User]) -> None:
    a, b = Actor(users["a1"]), Actor(users["b1"])
    now = datetime.now(UTC)
    await b.contacts.add(
        a.user.mxid, "Sonnenschein, Anna", now - timedelta(hours=2), now - timedelta(hours=1)
    )
    room_id = await a.room()
    await _refused(a, room_id, b.user.mxid)
    # a window that has not begun yet does not allow it either
    await b.contacts.update(a.user.mxid, "Sonnenschein, Anna", now + timedelta(hours=1))
    await _refused(a, room_id, b.user.mxid)
    await b.contacts.update(a.user.mxid, "Sonnenschein, Anna", None, now + timedelta(hours=1))
    await a.invite(room_id, b.user.mxid)
