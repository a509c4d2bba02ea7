"""Interop with a second Matrix client implementation across organisations: matrix-js-sdk with
its Rust crypto (tests/e2e/jspeer, driven by tests/support/jspeer.py) exchanges end-to-end
encrypted messages with a Python client through both Messenger-Proxies and real Synapses."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
)

from tests.support.federation import Federation
from tests.support.jspeer import JsPeer, JsPeerError
from tests.support.users import PASSWORD, A, B, User
from tests.support.wait import async_wait_until

ROOM_TYPE = "de.gematik.tim.roomtype.default.v1"
ROOM_STATE = "de.gematik.tim.room.default.v1"
MEGOLM = {"algorithm": "m.megolm.v1.aes-sha2"}
TIMEOUT = 60.0  # seconds for one message to cross the federation and be decrypted


class NioSide:
    """Side A: a matrix-nio client with encryption on, its crypto store in ``store``.

    Kept small on purpose: the same calls on timkit's TimClient replace it later.
    """

    def __init__(self, federation: Federation, domain: str, localpart: str, store: Path) -> None:
        self.user = User(federation, domain, localpart)
        self.mxid = self.user.mxid
        store.mkdir(parents=True, exist_ok=True)
        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
        self.nio = AsyncClient(
            self.user.url, self.mxid, store_path=str(store), config=config, ssl=self.user.ssl
        )
        self.user.nio = self.nio  # User.allow and User.auth use this client's token
        self.received: list[RoomMessageText | MegolmEvent] = []
        self._sync: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        """Log in (one device, keys uploaded by the sync loop) and sync in the background."""
        await self.user.login()

        async def on_message(room: object, event: RoomMessageText | MegolmEvent) -> None:
            self.received.append(event)

        self.nio.add_event_callback(on_message, (RoomMessageText, MegolmEvent))
        self._sync = asyncio.create_task(self.nio.sync_forever(timeout=1000, full_state=True))
        await async_wait_until(lambda: self.nio.olm and not self.nio.should_upload_keys, "keys")

    async def close(self) -> None:
        if self._sync is not None:
            # graceful: cancelling sync_forever leaves its in-flight requests (and their TLS
            # connections) behind the closed session
            self.nio.stop_sync_forever()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._sync, TIMEOUT)
        await self.user.close()

    async def allow(self, mxid: str) -> None:
        """Put ``mxid`` on the Freigabeliste (the proxy then lets its invites through)."""
        await self.user.allow(mxid)

    async def create_dm(self, invitee: str) -> str:
        """A TI-M DM with ``invitee``: room type, state event, encrypted from the start."""
        created = await self.nio.room_create(
            is_direct=True,
            invite=[invitee],
            room_type=ROOM_TYPE,
            initial_state=[
                {"type": "m.room.encryption", "state_key": "", "content": MEGOLM},
                {"type": ROOM_STATE, "state_key": "", "content": {}},
            ],
        )
        assert isinstance(created, RoomCreateResponse), created
        room_id = str(created.room_id)
        await async_wait_until(
            lambda: room_id in self.nio.rooms and self.nio.rooms[room_id].encrypted,
            "the created, encrypted room",
            TIMEOUT,
        )
        return room_id

    async def accept_invite(self, room_id: str) -> None:
        await async_wait_until(lambda: room_id in self.nio.invited_rooms, "the invite", TIMEOUT)
        assert isinstance(await self.nio.join(room_id), JoinResponse)
        await async_wait_until(
            lambda: room_id in self.nio.rooms and self.nio.rooms[room_id].encrypted,
            "the joined, encrypted room",
            TIMEOUT,
        )

    async def state(self, room_id: str, event_type: str) -> dict[str, Any]:
        """The content of the room's state event ``event_type`` (state key "")."""
        response = await self.user.http.get(
            f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{event_type}",
            headers=self.user.auth(),
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def send(self, room_id: str, body: str) -> str:
        content = {"msgtype": "m.text", "body": body}
        sent = await self.nio.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        assert isinstance(sent, RoomSendResponse), sent
        return str(sent.event_id)

    async def wait_message(self, body: str) -> dict[str, Any]:
        """The message with ``body`` as the peer's ``wait_message`` reports it."""

        def found() -> RoomMessageText | None:
            texts = [e for e in self.received if isinstance(e, RoomMessageText)]
            return next((e for e in texts if e.body == body), None)

        try:
            event = await async_wait_until(found, f'"{body}" at A', TIMEOUT)
        except pytest.fail.Exception:
            failed = sum(isinstance(e, MegolmEvent) for e in self.received)
            pytest.fail(f'"{body}" not decrypted at A; {failed} events failed to decrypt')
        assert event is not None
        return {
            "event_id": event.event_id,
            "sender": event.sender,
            "body": event.body,
            "encrypted": event.decrypted,  # nio marks events it decrypted from m.room.encrypted
            "decrypted": event.decrypted,
        }


@pytest.mark.timeout(600)  # ~30 s alone; boot, CLI and node starts stretch on a loaded machine
async def test_af_10062_encrypted_messages_between_nio_and_matrix_js_sdk_across_organisations(
    federation: Federation, tmp_path: Path
) -> None:
    """AF_10062 with two client implementations: the js peer at B opens a TI-M DM (room type,
    state event, encrypted from the start) with the nio actor at A, who put B on the
    Freigabeliste first (the proxy refuses cross-organisation invites otherwise, 403); a
    message each way arrives encrypted and is decrypted by the other implementation. Then the
    other way round: A opens the DM, the js peer accepts the invite and decrypts."""
    tag = uuid.uuid4().hex[:6]
    side_a = NioSide(federation, A, f"nio-{tag}", tmp_path / "nio-store")
    # B's account; its User logs in only to edit B's Freigabeliste (a device without crypto
    # keys, which senders skip); the js peer is B's client
    b_actor = User(federation, B, f"js-{tag}")
    js_localpart = b_actor.mxid.split(":")[0][1:]
    try:
        await side_a.start()
        async with JsPeer(federation.ca_cert) as peer:
            login = await peer.call(
                "login", base_url=federation.client_url(B), user=js_localpart, password=PASSWORD
            )
            with pytest.raises(JsPeerError) as refused:  # A has not put B on its list yet
                await peer.call("create_dm", invite=side_a.mxid)
            assert refused.value.status == 403, refused.value
            await side_a.allow(login["user_id"])
            room_id = (await peer.call("create_dm", invite=side_a.mxid))["room_id"]
            await side_a.accept_invite(room_id)
            create = await side_a.state(room_id, "m.room.create")
            assert create["type"] == ROOM_TYPE, create
            assert await side_a.state(room_id, "m.room.encryption") == MEGOLM
            assert await side_a.state(room_id, ROOM_STATE) == {}

            to_b = f"Befund für B {tag}"
            event_id = await side_a.send(room_id, to_b)
            got = await peer.call("wait_message", room_id=room_id, body=to_b, timeout=TIMEOUT)
            assert got == {
                "event_id": event_id,
                "sender": side_a.mxid,
                "body": to_b,
                "encrypted": True,
                "decrypted": True,
            }

            to_a = f"Antwort an A {tag}"
            sent = await peer.call("send", room_id=room_id, body=to_a)
            assert await side_a.wait_message(to_a) == {
                "event_id": sent["event_id"],
                "sender": login["user_id"],
                "body": to_a,
                "encrypted": True,
                "decrypted": True,
            }

            # the other way round: B lists A, A opens the DM, the js peer accepts the invite
            await (await b_actor.login()).allow(side_a.mxid)
            room_id = await side_a.create_dm(login["user_id"])
            assert (await peer.call("wait_invite", timeout=TIMEOUT))["room_id"] == room_id
            await peer.call("join", room_id=room_id)
            to_b = f"Zweiter Befund für B {tag}"
            await side_a.send(room_id, to_b)
            got = await peer.call("wait_message", room_id=room_id, body=to_b, timeout=TIMEOUT)
            assert (got["encrypted"], got["decrypted"]) == (True, True), got
    finally:
        await asyncio.gather(side_a.close(), b_actor.close())
