"""Interop with a second Matrix client implementation across organisations: matrix-js-sdk with
its Rust crypto (tests/e2e/jspeer, driven by tests/support/jspeer.py) exchanges end-to-end
encrypted messages with timkit's TimClient through both Messenger-Proxies and real Synapses."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.client import actor
from tests.support.federation import Federation
from tests.support.jspeer import JsPeer, JsPeerError
from tests.support.users import PASSWORD, A, B, User
from timkit.client import events as ev
from timkit.client.rooms import MEGOLM, ROOM_STATE, ROOM_TYPE

TIMEOUT = 60.0  # seconds for one message to cross the federation and be decrypted


@pytest.mark.timeout(600)  # ~30 s alone; boot, CLI and node starts stretch on a loaded machine
async def test_af_10062_encrypted_messages_between_timkit_and_matrix_js_sdk_across_organisations(
    federation: Federation, tmp_path: Path
) -> None:
    """AF_10062 with two client implementations: the js peer at B opens a TI-M DM (room type,
    state event, encrypted from the start) with the TimClient actor at A, who put B on the
    Freigabeliste first (the proxy refuses cross-organisation invites otherwise, 403); a
    message each way arrives encrypted and is decrypted by the other implementation. Then the
    other way round: A opens the DM, the js peer accepts the invite and decrypts."""
    tag = uuid.uuid4().hex[:6]
    alice = await actor(federation, tmp_path, A, f"sdk-{tag}")
    js_localpart = f"js-{tag}"
    federation.add_user(B, js_localpart, PASSWORD)
    alice.start()
    try:
        async with JsPeer(federation.ca_cert) as peer:
            login = await peer.call(
                "login", base_url=federation.client_url(B), user=js_localpart, password=PASSWORD
            )
            js_user = login["user_id"]
            with pytest.raises(JsPeerError) as refused:  # A has not put B on its list yet
                await peer.call("create_dm", invite=alice.user_id)
            assert refused.value.status == 403, refused.value
            await alice.contacts.add(js_user, "JS, Peer")
            room_id = (await peer.call("create_dm", invite=alice.user_id))["room_id"]
            invite = await alice.wait_for(
                lambda e: e if isinstance(e, ev.Invite) and e.room_id == room_id else None,
                TIMEOUT,
            )
            assert invite.is_direct
            await alice.rooms.join(room_id, direct_with=js_user)
            state = {e["type"]: e["content"] for e in await alice.rooms.state(room_id)}
            assert state["m.room.create"]["type"] == ROOM_TYPE
            assert state["m.room.encryption"]["algorithm"] == MEGOLM
            assert state[ROOM_STATE] == {}

            to_b = f"Befund für B {tag}"
            event_id = await alice.messages.send_text(room_id, to_b)
            got = await peer.call("wait_message", room_id=room_id, body=to_b, timeout=TIMEOUT)
            assert got == {
                "event_id": event_id,
                "sender": alice.user_id,
                "body": to_b,
                "encrypted": True,
                "decrypted": True,
            }

            to_a = f"Antwort an A {tag}"
            sent = await peer.call("send", room_id=room_id, body=to_a)
            reply = await alice.wait_for(
                lambda e: (
                    e if isinstance(e, ev.Message) and e.event_id == sent["event_id"] else None
                ),
                TIMEOUT,
            )
            assert (reply.sender, reply.body, reply.encrypted) == (js_user, to_a, True)

            # the other way round: B lists A (through a keyless login of B's account, the js
            # peer has no Freigabeliste calls), A opens the DM, the js peer accepts the invite
            b_actor = await User(federation, B, js_localpart).login()
            try:
                await b_actor.allow(alice.user_id)
            finally:
                await b_actor.close()
            room_id = await alice.rooms.create(js_user, direct=True)
            assert (await peer.call("wait_invite", timeout=TIMEOUT))["room_id"] == room_id
            await peer.call("join", room_id=room_id)
            await alice.wait_for(
                lambda e: (
                    e
                    if isinstance(e, ev.Membership)
                    and e.room_id == room_id
                    and e.user_id == js_user
                    and e.membership == "join"
                    else None
                ),
                TIMEOUT,
            )
            to_b = f"Zweiter Befund für B {tag}"
            await alice.messages.send_text(room_id, to_b)
            got = await peer.call("wait_message", room_id=room_id, body=to_b, timeout=TIMEOUT)
            assert (got["encrypted"], got["decrypted"]) == (True, True), got
            assert alice.decryption_failures == 0
    finally:
        await alice.close()
