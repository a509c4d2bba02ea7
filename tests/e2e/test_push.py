"""Pushes end to end: a message → Synapse's pusher → Push-Gateway → the device's push service.

Real Synapses behind their Messenger-Proxies, the real Push-Gateway and the local push
receiver (WebPush with VAPID and ``aes128gcm``, the FCM and APNs stand-ins). Devices are
registered as a TI-M client does: ``POST /pushers/set`` with ``format: event_id_only``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nio import JoinResponse, RoomCreateResponse, RoomSendResponse

from tests.support.federation import Federation, timkit
from tests.support.matrix import sync_until
from tests.support.users import PASSWORD, A, User
from tests.support.wait import async_wait_until
from timkit.runtime.layout import Layout
from timkit.runtime.push_chain import (
    APNS_APP,
    FCM_APP,
    NOTIFY_PATH,
    UNIFIEDPUSH_APP,
    WEBPUSH_APP,
    vapid_public_key,
)
from timkit.sdk.push import get_pushers, set_pusher


class Receiver:
    """The local push receiver's JSON API."""

    def __init__(self, federation: Federation) -> None:
        status = federation.status()
        self.url = str(status["push_receiver_url"])
        self.notify_url = str(status["push_gateway_url"]) + NOTIFY_PATH
        self.vapid = vapid_public_key(Layout(Path(status["data_dir"])))
        context = ssl.create_default_context(cafile=str(status["ca_cert"]))
        self.http = httpx.AsyncClient(base_url=self.url, verify=context, timeout=30)

    async def subscribe(self) -> dict[str, Any]:
        response = await self.http.post(
            "/api/webpush/subscriptions", json={"application_server_key": self.vapid}
        )
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    async def push_for(self, target: str, event_id: str) -> dict[str, Any]:
        """Wait (long-poll) for the push of ``event_id`` to ``target``."""
        seq = 0
        async with asyncio.timeout(60):
            while True:
                response = await self.http.get(
                    "/api/pushes", params={"since": seq, "target": target, "wait": 10}
                )
                assert response.status_code == 200, response.text
                for push in response.json()["pushes"]:
                    seq = max(seq, push["seq"])
                    payload = push["payload"]  # UnifiedPush: {"notification": {...}}
                    if payload.get("notification", payload).get("event_id") == event_id:
                        return dict(push)

    async def unifiedpush_endpoint(self) -> dict[str, Any]:
        """A fresh UnifiedPush endpoint at the receiver: ``{"id", "endpoint"}``."""
        response = await self.http.post("/api/unifiedpush/endpoints", json={})
        assert response.status_code in (200, 201), response.text
        return dict(response.json())


class Listener:
    """A loopback TCP service that records every connection (stands in for the unauthenticated
    FHIR-Directory or any other loopback-only service an attacker would aim a pushkey at)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._servers: list[asyncio.Server] = []

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aenter__(self) -> Listener:
        first = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self._servers.append(first)
        self.port = int(first.sockets[0].getsockname()[1])
        with contextlib.suppress(OSError):  # also ::1, where "localhost" may resolve first
            self._servers.append(await asyncio.start_server(self._accept, "::1", self.port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()


def _aimed_at(port: int) -> list[str]:
    """UnifiedPush pushkeys aimed at loopback ``port``, in the spellings an attacker tries."""
    return [
        f"http://127.0.0.1:{port}/fhir/Organization",
        f"https://127.0.0.1:{port}/fhir/Organization",
        f"http://localhost:{port}/fhir/Organization",
        f"http://127.1:{port}/fhir/Organization",
        f"http://2130706433:{port}/fhir/Organization",
        f"http://0x7f.0.0.1:{port}/fhir/Organization",
        f"http://0177.0.0.1:{port}/fhir/Organization",
        f"http://[::1]:{port}/fhir/Organization",
        f"http://[::ffff:127.0.0.1]:{port}/fhir/Organization",
        f"http://0.0.0.0:{port}/fhir/Organization",
    ]


async def _webpush_device(user: User, receiver: Receiver) -> dict[str, Any]:
    """Register a WebPush device of ``user`` as a TI-M client does; returns its subscription."""
    subscription = await receiver.subscribe()
    await set_pusher(
        user.http,
        user.url,
        str(user.nio.access_token),
        app_id=WEBPUSH_APP,
        pushkey=subscription["keys"]["p256dh"],
        gateway_url=receiver.notify_url,
        data={"endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"]},
    )
    return subscription


async def _chat(sender: User, recipient: User) -> str:
    """A 1:1 room of ``sender`` and ``recipient`` (joined); returns its id."""
    if sender.domain != recipient.domain:
        await recipient.allow(sender.mxid)
    await recipient.nio.sync(timeout=0)
    created = await sender.nio.room_create(invite=[recipient.mxid], is_direct=True)
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    assert await sync_until(recipient.nio, lambda r: room_id in r.rooms.invite)
    joined = await recipient.nio.join(room_id)
    assert isinstance(joined, JoinResponse), joined
    return str(room_id)


async def _send(sender: User, room_id: str, body: str) -> str:
    await sender.nio.sync(timeout=0)
    sent = await sender.nio.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": body}
    )
    assert isinstance(sent, RoomSendResponse), sent
    return str(sent.event_id)


@pytest.fixture
async def receiver(federation: Federation) -> AsyncIterator[Receiver]:
    made = Receiver(federation)
    try:
        yield made
    finally:
        await made.http.aclose()


def _assert_event_id_only(push: dict[str, Any], event_id: str, room_id: str) -> None:
    payload = push["payload"]
    assert push["kind"] == "webpush"
    assert payload["event_id"] == event_id
    assert payload["room_id"] == room_id
    assert payload["counts"]["unread"] >= 1
    # gematik's design: only ids leave the homeserver; the client fetches and decrypts.
    assert "content" not in payload
    assert "sender" not in payload


def test_the_push_gateway_and_receiver_run_and_synapse_may_reach_the_gateway(
    federation: Federation,
) -> None:
    status = federation.status()
    kinds = {c["kind"]: c for c in status["components"]}
    assert kinds["push"]["healthy"]
    assert kinds["pushreceiver"]["healthy"]
    assert kinds["push"]["url"] == status["push_gateway_url"]
    synapse = (federation.data_dir / "services" / A / "synapse" / "homeserver.yaml").read_text()
    assert "ip_range_whitelist:\n- 127.0.0.1" in synapse
    assert "no_proxy_hosts:\n- 127.0.0.1" in synapse


async def test_ml_123669_a_message_within_the_service_pushes_its_ids_to_the_device(
    users: dict[str, User], receiver: Receiver
) -> None:
    """AF_10063: the recipient's homeserver notifies its device via the Push-Gateway."""
    a1, a2 = users["a1"], users["a2"]
    room_id = await _chat(a1, a2)
    device = await _webpush_device(a2, receiver)
    event_id = await _send(a1, room_id, "Termin morgen um 9?")
    push = await receiver.push_for(device["id"], event_id)
    _assert_event_id_only(push, event_id, room_id)


async def test_ml_123667_a_message_from_another_organisation_pushes_via_both_proxies(
    users: dict[str, User], receiver: Receiver
) -> None:
    """AF_10062: the event crosses both Messenger-Proxies; B's homeserver notifies b1."""
    a1, b1 = users["a1"], users["b1"]
    room_id = await _chat(a1, b1)
    device = await _webpush_device(b1, receiver)
    event_id = await _send(a1, room_id, "Befund ist da.")
    push = await receiver.push_for(device["id"], event_id)
    _assert_event_id_only(push, event_id, room_id)


async def test_a_gone_endpoint_makes_synapse_drop_the_pusher(
    users: dict[str, User], receiver: Receiver
) -> None:
    a1, a2 = users["a1"], users["a2"]
    room_id = await _chat(a1, a2)
    device = await _webpush_device(a2, receiver)
    token = str(a2.nio.access_token)
    assert len(await get_pushers(a2.http, a2.url, token)) == 1
    gone = await receiver.http.delete(f"/api/webpush/subscriptions/{device['id']}")
    assert gone.status_code in (200, 204), gone.text
    await _send(a1, room_id, "Noch da?")  # → 410 at the endpoint → rejected → pusher removed

    async def dropped() -> bool:
        return await get_pushers(a2.http, a2.url, token) == []

    await async_wait_until(dropped, "Synapse to drop the rejected pusher", timeout=30)


async def test_a_503_from_the_endpoint_is_retried_until_the_push_arrives(
    users: dict[str, User], receiver: Receiver
) -> None:
    a1, a2 = users["a1"], users["a2"]
    room_id = await _chat(a1, a2)
    device = await _webpush_device(a2, receiver)
    fault = await receiver.http.post(
        "/api/faults", json={"target": device["id"], "status": 503, "count": 1}
    )
    assert fault.status_code in (200, 201, 204), fault.text
    event_id = await _send(a1, room_id, "Rückruf bitte")
    await receiver.push_for(device["id"], event_id)
    attempts = await receiver.http.get("/api/attempts", params={"target": device["id"]})
    assert attempts.status_code == 200, attempts.text
    assert attempts.json()["count"] >= 2


async def test_fcm_and_apns_devices_get_their_push_through_the_stand_ins(
    users: dict[str, User], receiver: Receiver
) -> None:
    a1, a2 = users["a1"], users["a2"]
    room_id = await _chat(a1, a2)
    token = str(a2.nio.access_token)
    fcm_token = f"fcm-{uuid.uuid4().hex}"
    apns_token = uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex digits
    for app_id, pushkey in ((FCM_APP, fcm_token), (APNS_APP, apns_token)):
        await set_pusher(
            a2.http, a2.url, token, app_id=app_id, pushkey=pushkey, gateway_url=receiver.notify_url
        )
    event_id = await _send(a1, room_id, "Labor fertig")
    fcm = await receiver.push_for(fcm_token, event_id)
    apns = await receiver.push_for(apns_token, event_id)
    assert fcm["kind"] == "fcm"
    assert fcm["payload"]["room_id"] == room_id
    assert apns["kind"] == "apns"
    assert apns["payload"]["room_id"] == room_id


async def test_push_subscribe_and_tail_show_a_newcomer_the_push(
    federation: Federation, users: dict[str, User]
) -> None:
    a1 = users["a1"]
    localpart = f"neu-{uuid.uuid4().hex[:6]}"
    newcomer = User(federation, A, localpart)
    try:
        await newcomer.login()
        out = timkit(federation.config, "push", "subscribe", A, localpart, "--password", PASSWORD)
        device = json.loads(out.stdout)
        assert device["user_id"] == newcomer.mxid
        target = device["subscription"]
        room_id = await _chat(a1, newcomer)
        event_id = await _send(a1, room_id, "Willkommen")

        async def tailed() -> bool:
            tail = timkit(federation.config, "push", "tail", "--target", target)
            # the line names whose device it reached
            return any(
                event_id in line and newcomer.mxid in line for line in tail.stdout.splitlines()
            )

        await async_wait_until(tailed, "timkit push tail to show the push", timeout=60)
    finally:
        await newcomer.close()


async def test_pushkeys_aimed_at_another_loopback_port_are_rejected_and_never_connect(
    receiver: Receiver,
) -> None:
    """Finding 7: the gateway reaches exactly the receiver's origin, not loopback at large.

    The attack posted straight to the real gateway: UnifiedPush pushkeys and a WebPush
    endpoint aimed at another loopback port; the receiver's own devices in the same
    notification are still served.
    """
    async with Listener() as listener:
        attack = _aimed_at(listener.port)
        subscription = await receiver.subscribe()
        keys = subscription["keys"]
        other = (await receiver.subscribe())["keys"]
        stolen = {  # a valid subscription's keys, its endpoint swapped for the listener
            "app_id": WEBPUSH_APP,
            "pushkey": other["p256dh"],
            "data": {"endpoint": attack[0], "auth": other["auth"]},
        }
        honest_up = await receiver.unifiedpush_endpoint()
        devices = [
            *({"app_id": UNIFIEDPUSH_APP, "pushkey": key} for key in attack),
            {"app_id": UNIFIEDPUSH_APP, "pushkey": "not-a-url"},
            stolen,
            {"app_id": UNIFIEDPUSH_APP, "pushkey": honest_up["endpoint"]},
            {
                "app_id": WEBPUSH_APP,
                "pushkey": keys["p256dh"],
                "data": {"endpoint": subscription["endpoint"], "auth": keys["auth"]},
            },
        ]
        event_id = f"$attack-{uuid.uuid4().hex}"
        notification = {"event_id": event_id, "room_id": "!r:a.tim.test", "devices": devices}
        response = await receiver.http.post(
            receiver.notify_url, json={"notification": notification}
        )
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == [*attack, "not-a-url", stolen["pushkey"]]
        await receiver.push_for(honest_up["id"], event_id)
        await receiver.push_for(subscription["id"], event_id)
        assert listener.connections == 0


async def test_a_pusher_aimed_at_another_loopback_port_is_dropped_by_synapse(
    users: dict[str, User], receiver: Receiver
) -> None:
    """Finding 7 through Synapse: the pushers are rejected and removed, the device served."""
    a1, a2 = users["a1"], users["a2"]
    room_id = await _chat(a1, a2)
    token = str(a2.nio.access_token)
    async with Listener() as listener:
        unified = f"http://127.0.0.1:{listener.port}/fhir/Organization"
        named = f"https://localhost:{listener.port}/fhir/Organization"
        stolen = await receiver.subscribe()
        for pushkey in (unified, named):
            await set_pusher(
                a2.http,
                a2.url,
                token,
                app_id=UNIFIEDPUSH_APP,
                pushkey=pushkey,
                gateway_url=receiver.notify_url,
            )
        await set_pusher(
            a2.http,
            a2.url,
            token,
            app_id=WEBPUSH_APP,
            pushkey=stolen["keys"]["p256dh"],
            gateway_url=receiver.notify_url,
            data={"endpoint": unified, "auth": stolen["keys"]["auth"]},
        )
        device = await _webpush_device(a2, receiver)
        assert len(await get_pushers(a2.http, a2.url, token)) == 4
        event_id = await _send(a1, room_id, "Befund: vertraulich")
        await receiver.push_for(device["id"], event_id)

        async def only_the_device_left() -> bool:
            pushers = await get_pushers(a2.http, a2.url, token)
            return [p["pushkey"] for p in pushers] == [device["keys"]["p256dh"]]

        await async_wait_until(only_the_device_left, "Synapse to drop the rejected pushers", 30)
        assert listener.connections == 0
