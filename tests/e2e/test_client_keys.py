"""Cross-signing, secret storage and key backup of ``timkit.client.keys`` on a real Synapse
behind the Messenger-Proxy: a second device of the same user reads messages sent before it
logged in (issue 16 §2; the approval suite's multi-device scenarios 13.x)."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
)
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json

from tests.support.federation import Federation
from tests.support.matrix import sync_until
from tests.support.users import PASSWORD, A, User
from timkit.client.keys import (
    RestoreResult,
    backup_status,
    recover,
    setup_recovery,
    upload_new_sessions,
)
from timkit.client.keys.codec import b64decode
from timkit.client.matrix_api import MatrixApi
from timkit.core.errors import TimkitError

ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


@dataclass
class Device:
    """One logged-in nio device with encryption and its MatrixApi."""

    nio: AsyncClient
    api: MatrixApi

    @property
    def olm(self) -> Any:
        return self.nio.olm

    async def close(self) -> None:
        await asyncio.gather(self.nio.close(), self.api.http.aclose())


async def _device(federation: Federation, mxid: str, store: Path, publish: bool = True) -> Device:
    """Log ``mxid`` in as a new device with crypto store ``store`` (publishing its keys)."""
    context = ssl.create_default_context(cafile=federation.ca_cert)
    url = federation.client_url(A)
    client = AsyncClient(
        url,
        mxid,
        store_path=str(store),
        config=AsyncClientConfig(encryption_enabled=True),
        ssl=context,
    )
    login = await client.login(PASSWORD, device_name="timkit keys test")
    assert isinstance(login, LoginResponse), login
    if publish and client.should_upload_keys:
        await client.keys_upload()
    http = httpx.AsyncClient(verify=context, timeout=30)
    return Device(client, MatrixApi(http, url, client.access_token))


async def _send(device: Device, room_id: str, body: str) -> None:
    sent = await device.nio.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        ignore_unverified_devices=True,
    )
    assert isinstance(sent, RoomSendResponse), sent


async def _encrypted_room(device: Device, peer: User) -> str:
    created = await device.nio.room_create(invite=[peer.mxid], initial_state=[ENCRYPTION])
    assert isinstance(created, RoomCreateResponse), created
    assert await sync_until(peer.nio, lambda r: created.room_id in r.rooms.invite)
    assert isinstance(await peer.nio.join(created.room_id), JoinResponse)
    await sync_until(device.nio, lambda r: created.room_id in r.rooms.join)
    return str(created.room_id)


@dataclass
class Scene:
    """Device 1 sent two encrypted messages (one before, one after recovery was set up)."""

    federation: Federation
    mxid: str
    first: Device
    rooms: tuple[str, str]
    texts: tuple[str, str]
    recovery_key: str
    uploaded_later: int


@pytest.fixture(scope="module")
async def scene(
    federation: Federation, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Scene]:
    tag = uuid.uuid4().hex[:6]
    mxid = federation.add_user(A, f"mehrgeraet-{tag}", PASSWORD)
    peer = await User(federation, A, f"kollege-{tag}").login()
    first = await _device(federation, mxid, tmp_path_factory.mktemp("first-device"))
    try:
        texts = (f"Befund vor der Sicherung {tag}", f"Befund nach der Sicherung {tag}")
        before = await _encrypted_room(first, peer)
        await _send(first, before, texts[0])
        recovery_key = await setup_recovery(
            first.api, first.olm, mxid, first.nio.device_id, PASSWORD
        )
        after = await _encrypted_room(first, peer)
        await _send(first, after, texts[1])
        uploaded = await upload_new_sessions(first.api, first.olm)
        yield Scene(federation, mxid, first, (before, after), texts, recovery_key, uploaded)
    finally:
        await asyncio.gather(first.close(), peer.close())


@dataclass
class Recovered:
    device: Device
    result: RestoreResult


@pytest.fixture(scope="module")
async def recovered(
    scene: Scene, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Recovered]:
    """A second device of the same user, logged in after both messages, recovered."""
    second = await _device(scene.federation, scene.mxid, tmp_path_factory.mktemp("second-device"))
    try:
        result = await recover(
            second.api, second.olm, scene.mxid, second.nio.device_id, scene.recovery_key
        )
        yield Recovered(second, result)
    finally:
        await second.close()


async def _texts(device: Device, room_id: str) -> list[str]:
    synced = await device.nio.sync(timeout=0, full_state=True)
    token = getattr(synced, "next_batch", None)
    assert token, synced
    page = await device.nio.room_messages(room_id, start=token, limit=20)
    assert isinstance(page, RoomMessagesResponse), page
    return [e.body for e in page.chunk if isinstance(e, RoomMessageText)]


async def test_second_device_reads_earlier_messages_after_recovery(
    scene: Scene, recovered: Recovered
) -> None:
    assert scene.uploaded_later == 1  # the session of the second room; the first was backed up
    assert recovered.result.failed == 0
    assert recovered.result.imported >= 2
    for room_id, text in zip(scene.rooms, scene.texts, strict=True):
        assert text in await _texts(recovered.device, room_id)


async def _keys(device: Device, mxid: str) -> dict[str, Any]:
    return await device.api.call(
        "POST", "/_matrix/client/v3/keys/query", json={"device_keys": {mxid: []}}
    )


async def test_recovered_device_carries_the_self_signing_signature_and_signs_the_master_key(
    scene: Scene, recovered: Recovered
) -> None:
    keys = await _keys(scene.first, scene.mxid)
    master, self_signing = keys["master_keys"][scene.mxid], keys["self_signing_keys"][scene.mxid]
    ((ssk_id, ssk),) = self_signing["keys"].items()
    ((master_id, master_public),) = master["keys"].items()
    verify_signed_json(
        self_signing, scene.mxid, decode_verify_key_bytes(master_id, b64decode(master_public, "k"))
    )
    for device in (scene.first, recovered.device):
        device_id = device.nio.device_id
        device_keys = keys["device_keys"][scene.mxid][device_id]
        verify_signed_json(
            device_keys, scene.mxid, decode_verify_key_bytes(ssk_id, b64decode(ssk, "k"))
        )
        ed25519 = device_keys["keys"][f"ed25519:{device_id}"]
        assert ed25519 == device.olm.account.identity_keys["ed25519"]
        verify_signed_json(
            master,
            scene.mxid,
            decode_verify_key_bytes(f"ed25519:{device_id}", b64decode(ed25519, "k")),
        )


async def test_the_backup_is_reported_with_every_uploaded_session(
    scene: Scene, recovered: Recovered
) -> None:
    status = await backup_status(scene.first.api)
    assert status.enabled
    assert status.algorithm == "m.megolm_backup.v1.curve25519-aes-sha2"
    assert status.version == recovered.result.version
    assert status.count == recovered.result.total >= 2
    # the recovered device trusts the backup now and has nothing new to add
    assert await upload_new_sessions(recovered.device.api, recovered.device.olm) == 0


async def test_a_wrong_recovery_key_is_refused_and_imports_nothing(
    scene: Scene, tmp_path: Path
) -> None:
    third = await _device(scene.federation, scene.mxid, tmp_path)
    try:
        other_key = "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d"
        mistyped = scene.recovery_key[:-1] + ("1" if scene.recovery_key[-1] != "1" else "2")
        for wrong, status in ((other_key, 403), (mistyped, 400)):
            with pytest.raises(TimkitError) as raised:
                await recover(third.api, third.olm, scene.mxid, third.nio.device_id, wrong)
            assert raised.value.status == status, raised.value
        assert list(third.olm.inbound_group_store) == []
        assert scene.texts[0] not in await _texts(third, scene.rooms[0])
        device_keys = (await _keys(third, scene.mxid))["device_keys"][scene.mxid][
            third.nio.device_id
        ]
        assert set(device_keys["signatures"][scene.mxid]) == {f"ed25519:{third.nio.device_id}"}
        # an unrecovered device has not verified the master key: it uploads nothing
        with pytest.raises(TimkitError) as refused:
            await upload_new_sessions(third.api, third.olm)
        assert refused.value.status == 403
        assert "master key" in refused.value.message
    finally:
        await third.close()


@dataclass
class Lone:
    """A user whose one device set up recovery (no rooms), for attacks on the account."""

    federation: Federation
    mxid: str
    device: Device
    recovery_key: str


@pytest.fixture(scope="module")
async def lone(
    federation: Federation, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Lone]:
    mxid = federation.add_user(A, f"allein-{uuid.uuid4().hex[:6]}", PASSWORD)
    device = await _device(federation, mxid, tmp_path_factory.mktemp("lone-device"))
    try:
        key = await setup_recovery(device.api, device.olm, mxid, device.nio.device_id, PASSWORD)
        yield Lone(federation, mxid, device, key)
    finally:
        await device.close()


async def test_replacing_the_cross_signing_identity_needs_the_password(lone: Lone) -> None:
    """An access token alone cannot swap the user's master key (user-interactive auth)."""
    before = (await _keys(lone.device, lone.mxid))["master_keys"][lone.mxid]
    with pytest.raises(TimkitError) as raised:
        await setup_recovery(
            lone.device.api, lone.device.olm, lone.mxid, lone.device.nio.device_id, "falsch"
        )
    assert raised.value.status in (401, 403), raised.value
    assert (await _keys(lone.device, lone.mxid))["master_keys"][lone.mxid] == before


async def test_a_backup_version_the_master_key_did_not_sign_gets_no_keys_and_no_restore(
    lone: Lone, tmp_path: Path
) -> None:
    """A backup version whose key the account's master key did not sign (made by whoever holds
    an access token, or by the homeserver) receives no session, and recovery refuses it."""
    genuine = await backup_status(lone.device.api)
    rogue_key = "8l/3J0EsDeCUUkazahavQRO2hA9uEU/inxu1lSZll2U"
    created = await lone.device.api.call(
        "POST",
        "/_matrix/client/v3/room_keys/version",
        json={"algorithm": genuine.algorithm, "auth_data": {"public_key": rogue_key}},
    )
    rogue = str(created["version"])
    second = await _device(lone.federation, lone.mxid, tmp_path)
    try:
        with pytest.raises(TimkitError) as refused:
            await upload_new_sessions(lone.device.api, lone.device.olm)
        assert refused.value.status == 403
        assert "not signed by the master key" in refused.value.message
        with pytest.raises(TimkitError) as restore_refused:
            await recover(
                second.api, second.olm, lone.mxid, second.nio.device_id, lone.recovery_key
            )
        assert restore_refused.value.status == 403
        assert "does not belong to the stored backup key" in restore_refused.value.message
        assert list(second.olm.inbound_group_store) == []
        stored = await lone.device.api.call(
            "GET", "/_matrix/client/v3/room_keys/keys", params={"version": rogue}
        )
        assert stored["rooms"] == {}
    finally:
        await lone.device.api.call("DELETE", f"/_matrix/client/v3/room_keys/version/{rogue}")
        await second.close()
    assert (await backup_status(lone.device.api)).version == genuine.version


async def test_setup_refuses_a_device_that_has_not_published_its_keys_and_changes_nothing(
    federation: Federation, tmp_path: Path
) -> None:
    mxid = federation.add_user(A, f"ohne-schluessel-{uuid.uuid4().hex[:6]}", PASSWORD)
    device = await _device(federation, mxid, tmp_path, publish=False)
    try:
        with pytest.raises(TimkitError) as raised:
            await setup_recovery(device.api, device.olm, mxid, device.nio.device_id, PASSWORD)
        assert raised.value.status == 409
        assert "has not uploaded its keys" in raised.value.message
        keys = await _keys(device, mxid)
        assert mxid not in keys.get("master_keys", {})
        assert not (await backup_status(device.api)).enabled
    finally:
        await device.close()
