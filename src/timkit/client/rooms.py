"""Rooms as TI-M defines them (Client.adoc "CreateRoom", "Custom Room Types/State Events").

* Every room the SDK creates has the room type ``de.gematik.tim.roomtype.default.v1``, the
  state event ``de.gematik.tim.room.default.v1`` and Megolm encryption from the first event.
* ``createRoom`` names at most one invitee (the Messenger-Proxy checks exactly one); a 1:1
  chat is ``is_direct`` and recorded in the ``m.direct`` account data of both actors, and an
  existing one is reused.
* Rejecting an invite is leave + forget. Refusals by the Messenger-Proxy (Freigabeliste,
  federation, a third user in a 1:1 chat) arrive as :class:`TimkitError` with status 403 and
  the proxy's ``errcode``/rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from timkit.client.matrix_api import segment
from timkit.core.errors import Codes, TimkitError

if TYPE_CHECKING:
    from timkit.client.session import TimClient

ROOM_TYPE = "de.gematik.tim.roomtype.default.v1"
ROOM_STATE = "de.gematik.tim.room.default.v1"
TIM_NAME = "de.gematik.tim.room.name"
TIM_TOPIC = "de.gematik.tim.room.topic"
MEGOLM = "m.megolm.v1.aes-sha2"
CREATE_RULE = "Client.adoc CreateRoom (one invitee)"


@dataclass(frozen=True)
class RoomInfo:
    """A room this user is in or invited to, as the last sync knew it.

    Attributes:
        room_id: the room.
        name: its display name (``m.room.name`` or derived from members).
        encrypted: whether Megolm is on.
        members: the joined members' MXIDs.
        invited: the invited MXIDs.
        room_type: the ``m.room.create`` type (``de.gematik.tim.roomtype.default.v1``).
    """

    room_id: str
    name: str
    encrypted: bool
    members: tuple[str, ...]
    invited: tuple[str, ...]
    room_type: str | None


class Rooms:
    """The room operations of one :class:`TimClient`."""

    def __init__(self, client: TimClient) -> None:
        self.client = client

    async def create(
        self,
        invite: str | None = None,
        *,
        name: str | None = None,
        topic: str | None = None,
        direct: bool = False,
        encrypted: bool = True,
    ) -> str:
        """Create a TI-M room, inviting at most one actor; returns the room id.

        ``name`` and ``topic`` go into ``m.room.name``/``m.room.topic`` and, as Client.adoc
        asks for default rooms, ``de.gematik.tim.room.name``/``.topic`` too.

        Raises:
            TimkitError: 400 for a direct room without invitee; the proxy's 403 when the
                invite is refused (Freigabeliste, federation list, ML-129415).
        """
        if direct and invite is None:
            raise TimkitError(400, Codes.INVALID_PARAM, "a 1:1 chat needs the invitee")
        state: list[dict[str, Any]] = [{"type": ROOM_STATE, "state_key": "", "content": {}}]
        if encrypted:
            state.append(
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
            )
        if name is not None:
            state.append({"type": TIM_NAME, "state_key": "", "content": {"name": name}})
        if topic is not None:
            state.append({"type": TIM_TOPIC, "state_key": "", "content": {"topic": topic}})
        body: dict[str, Any] = {
            "preset": "trusted_private_chat" if direct else "private_chat",
            "creation_content": {"type": ROOM_TYPE},
            "initial_state": state,
            "invite": [invite] if invite is not None else [],
            "is_direct": direct,
        }
        if name is not None:
            body["name"] = name
        if topic is not None:
            body["topic"] = topic
        answer = await self.client.api.call("POST", "/_matrix/client/v3/createRoom", json=body)
        room_id = str(answer["room_id"])
        if direct and invite is not None:
            await self._mark_direct(invite, room_id)
        return room_id

    async def dm(self, user_id: str) -> str:
        """The 1:1 chat with ``user_id``: an existing one from ``m.direct`` where both are
        still members, else a new one."""
        for room_id in (await self.direct_rooms()).get(user_id, []):
            room = self.client.nio.rooms.get(room_id)
            if room is not None and user_id in room.users and self.client.user_id in room.users:
                return room_id
        return await self.create(user_id, direct=True)

    async def direct_rooms(self) -> dict[str, list[str]]:
        """The ``m.direct`` account data: partner MXID → room ids."""
        try:
            data = await self.client.api.call("GET", self._direct_path())
        except TimkitError as e:
            if e.status == 404:
                return {}
            raise
        return {
            str(user): [str(r) for r in rooms]
            for user, rooms in data.items()
            if isinstance(rooms, list)
        }

    async def _mark_direct(self, partner: str, room_id: str) -> None:
        direct = await self.direct_rooms()
        rooms = direct.setdefault(partner, [])
        if room_id not in rooms:
            rooms.append(room_id)
            await self.client.api.call("PUT", self._direct_path(), json=direct)

    def _direct_path(self) -> str:
        return f"/_matrix/client/v3/user/{segment(self.client.user_id)}/account_data/m.direct"

    async def invite(self, room_id: str, user_id: str) -> None:
        """Invite ``user_id`` (the proxy's permission check decides; 403 when refused)."""
        await self.client.api.call(
            "POST", f"/_matrix/client/v3/rooms/{segment(room_id)}/invite", json={"user_id": user_id}
        )

    async def join(self, room_id: str, *, direct_with: str | None = None) -> None:
        """Join ``room_id``; ``direct_with`` records it as the 1:1 chat with that actor."""
        await self.client.api.call("POST", f"/_matrix/client/v3/join/{segment(room_id)}", json={})
        if direct_with is not None:
            await self._mark_direct(direct_with, room_id)

    async def leave(self, room_id: str) -> None:
        """Leave ``room_id``."""
        await self.client.api.call(
            "POST", f"/_matrix/client/v3/rooms/{segment(room_id)}/leave", json={}
        )

    async def reject(self, room_id: str) -> None:
        """Reject an invite: leave and forget the room."""
        await self.leave(room_id)
        await self.client.api.call(
            "POST", f"/_matrix/client/v3/rooms/{segment(room_id)}/forget", json={}
        )

    async def state(self, room_id: str) -> list[dict[str, Any]]:
        """The room's current state events (``GET /rooms/{id}/state``)."""
        path = f"/_matrix/client/v3/rooms/{segment(room_id)}/state"
        events = await self.client.api.call_json("GET", path)
        return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []

    async def put_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> str:
        """Set a state event; returns its event id."""
        path = (
            f"/_matrix/client/v3/rooms/{segment(room_id)}/state/"
            f"{segment(event_type)}/{segment(state_key)}"
        )
        answer = await self.client.api.call("PUT", path, json=content)
        return str(answer["event_id"])

    def list(self) -> list[RoomInfo]:
        """Rooms known from the last sync (joined and invited)."""
        found = []
        for room_id, room in {**self.client.nio.invited_rooms, **self.client.nio.rooms}.items():
            found.append(
                RoomInfo(
                    room_id=room_id,
                    name=room.display_name,
                    encrypted=bool(room.encrypted),
                    members=tuple(sorted(set(room.users) - set(room.invited_users))),
                    invited=tuple(sorted(room.invited_users)),
                    room_type=getattr(room, "room_type", None),
                )
            )
        return sorted(found, key=lambda r: r.name.lower())
