"""matrix-nio helpers for tests against real homeservers."""

from __future__ import annotations

from collections.abc import Callable

from nio import AsyncClient, RoomMessageText, SyncResponse

from tests.support.wait import async_wait_until


async def sync_until(client: AsyncClient, found: Callable[[SyncResponse], object]) -> object:
    """Sync (long-polling, so no busy loop) until ``found`` returns something truthy."""

    async def sync_once() -> object:
        response = await client.sync(timeout=1000)
        assert isinstance(response, SyncResponse), response
        return found(response)

    return await async_wait_until(sync_once, f"an event at {client.user_id}", timeout=30.0)


def messages(room_id: str) -> Callable[[SyncResponse], list[RoomMessageText]]:
    """A ``sync_until`` predicate: the text messages of ``room_id`` in a sync response."""

    def find(response: SyncResponse) -> list[RoomMessageText]:
        room = response.rooms.join.get(room_id)
        events = room.timeline.events if room else []
        return [e for e in events if isinstance(e, RoomMessageText)]

    return find
