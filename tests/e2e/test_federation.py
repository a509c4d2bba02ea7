"""Two organisations exchange messages over real TLS federation (matrix-nio clients)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from tests.support.federation import Federation
from tests.support.wait import async_wait_until

A = "praxis-sonnenschein.tim.test"
B = "klinikum-nord.tim.test"


async def _login(federation: Federation, domain: str, localpart: str) -> AsyncClient:
    mxid = federation.add_user(domain, localpart, "correct horse battery staple")
    ctx = ssl.create_default_context(cafile=federation.ca_cert)
    client = AsyncClient(federation.client_url(domain), mxid, ssl=ctx)
    response = await client.login("correct horse battery staple")
    assert isinstance(response, LoginResponse), response
    return client


async def _sync_until(client: AsyncClient, found: Callable[[SyncResponse], object]) -> object:
    """Sync (long-polling, so no busy loop) until ``found`` returns something truthy."""

    async def sync_once() -> object:
        response = await client.sync(timeout=1000)
        assert isinstance(response, SyncResponse), response
        return found(response)

    return await async_wait_until(sync_once, f"an event at {client.user_id}", timeout=30.0)


@pytest.fixture
async def pair(federation: Federation) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    alice, bob = await asyncio.gather(_login(federation, A, "alice"), _login(federation, B, "bob"))
    try:
        yield alice, bob
    finally:
        await asyncio.gather(alice.close(), bob.close())


def _messages(room_id: str) -> Callable[[SyncResponse], list[RoomMessageText]]:
    def find(response: SyncResponse) -> list[RoomMessageText]:
        room = response.rooms.join.get(room_id)
        events = room.timeline.events if room else []
        return [e for e in events if isinstance(e, RoomMessageText)]

    return find


async def test_users_of_two_organisations_exchange_messages_over_federation(
    pair: tuple[AsyncClient, AsyncClient],
) -> None:
    alice, bob = pair
    await bob.sync(timeout=0)  # establish bob's since-token before the invite

    created = await alice.room_create(invite=[bob.user_id], name="Konsil")
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id

    invited = await _sync_until(bob, lambda r: room_id in r.rooms.invite)
    assert invited
    joined = await bob.join(room_id)
    assert isinstance(joined, JoinResponse), joined

    await alice.sync(timeout=0)
    sent = await alice.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": "Befund ist da."}
    )
    assert isinstance(sent, RoomSendResponse), sent
    received = await _sync_until(bob, _messages(room_id))
    assert isinstance(received, list)
    assert [(m.sender, m.body) for m in received] == [(alice.user_id, "Befund ist da.")]

    reply = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "Danke!"})
    assert isinstance(reply, RoomSendResponse), reply
    answers = await _sync_until(
        alice, lambda r: [m for m in _messages(room_id)(r) if m.sender == bob.user_id]
    )
    assert isinstance(answers, list)
    assert [m.body for m in answers] == ["Danke!"]
