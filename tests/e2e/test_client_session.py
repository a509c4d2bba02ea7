"""timkit.client against a real federation: AF_10057 login, encrypted chat across
organisations, media, rooms as TI-M defines them (two services, real TLS, both proxies)."""

from __future__ import annotations

import json
import ssl
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from tests.e2e.test_directory_proxy import provider_token, tls_client
from tests.support.client import actor, client_options
from tests.support.federation import Federation, running, write_config
from tests.support.users import CONTACTS, PASSWORD
from timkit.client import events as ev
from timkit.client.profile import Profile
from timkit.client.rooms import ROOM_STATE, ROOM_TYPE
from timkit.client.session import TimClient
from timkit.core.errors import TimkitError

A = "praxis-sonnenschein.tim.test"
B = "klinikum-nord.tim.test"
C = "apotheke-am-markt.tim.test"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    config = write_config(tmp_path_factory.mktemp("client-session"), 3)
    with running(config) as federation:
        yield federation


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pair(
    federation: Federation, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[TimClient, TimClient]]:
    """Alice on A and Bob on B, logged in and syncing; Bob allows Alice (Freigabeliste)."""
    home = tmp_path_factory.mktemp("profiles")
    alice = await actor(federation, home, A, "alice")
    bob = await actor(federation, home, B, "bob")
    token = await bob.openid_token()
    response = await bob.http.post(
        f"{bob.api.base_url}{CONTACTS}/contacts",
        json={"displayName": "Alice", "mxid": alice.user_id, "inviteSettings": {"start": 0}},
        headers={"Authorization": f"Bearer {token.access_token}", "Mxid": bob.user_id},
    )
    assert response.status_code == 200, response.text
    alice.start()
    bob.start()
    yield alice, bob
    await alice.close()
    await bob.close()


def _invite_to(room_id: str) -> Callable[[ev.Event], ev.Invite | None]:
    def match(event: ev.Event) -> ev.Invite | None:
        return event if isinstance(event, ev.Invite) and event.room_id == room_id else None

    return match


@pytest.mark.asyncio(loop_scope="module")
async def test_ml_123571_ml_123576_login_after_the_federation_check(
    federation: Federation, tmp_path: Path
) -> None:
    client = await actor(federation, tmp_path, A, "login-check")
    try:
        assert client.user_id == f"@login-check:{A}"
        assert client.session.access_token  # ML-123576: the service issued a token
        assert client.session.base_url == federation.client_url(A)
        # the VZD accepted the homeserver; its search token is kept for searches
        assert (await client.directory.token()).fresh()
        assert client.directory.exchanges == 0
        whoami = await client.api.call("GET", "/_matrix/client/v3/account/whoami")
        assert whoami["device_id"] == client.device_id
    finally:
        await client.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_ml_123575_token_and_crypto_store_are_kept_private_and_restored(
    federation: Federation, tmp_path: Path
) -> None:
    client = await actor(federation, tmp_path, A, "keeper")
    device = client.device_id
    await client.close()
    profile = Profile("keeper", tmp_path)
    assert stat.S_IMODE(profile.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(profile.session_file.stat().st_mode) == 0o600
    stored = json.loads(profile.session_file.read_text())
    assert stored["access_token"]
    assert stored["device_id"] == device
    store_files = [p for p in profile.store_dir.iterdir() if p.is_file()]
    assert store_files
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in store_files)
    restored = await TimClient.restore(profile, client_options(federation))
    try:
        assert restored.device_id == device
        assert restored.nio.olm is not None  # the same Olm account, loaded from the store
    finally:
        await restored.logout()
    assert not profile.session_file.exists()
    assert not profile.store_dir.exists()
    with pytest.raises(TimkitError) as refused:
        await TimClient.restore(profile, client_options(federation))
    assert refused.value.status == 401


@pytest.mark.asyncio(loop_scope="module")
async def test_a_wrong_password_is_a_typed_403_and_stores_nothing(
    federation: Federation, tmp_path: Path
) -> None:
    user_id = federation.add_user(A, "careful", PASSWORD)
    profile = Profile("careful", tmp_path)
    with pytest.raises(TimkitError) as refused:
        await TimClient.login(profile, client_options(federation), user_id, "wrong")
    assert refused.value.status == 403
    assert refused.value.errcode == "M_FORBIDDEN"
    assert profile.load() is None


@pytest.mark.asyncio(loop_scope="module")
async def test_af_10057_registration_where_the_homeserver_allows_none_is_a_typed_403(
    federation: Federation, tmp_path: Path
) -> None:
    profile = Profile("newcomer", tmp_path)
    with pytest.raises(TimkitError) as refused:
        await TimClient.register(profile, client_options(federation), f"@newcomer:{A}", PASSWORD)
    assert refused.value.status == 403
    assert refused.value.errcode == "M_FORBIDDEN"
    assert profile.load() is None


@pytest.mark.asyncio(loop_scope="module")
async def test_af_10062_encrypted_messages_and_media_across_organisations(
    pair: tuple[TimClient, TimClient],
) -> None:
    alice, bob = pair
    room_id = await alice.rooms.create(bob.user_id, direct=True)
    invite = await bob.wait_for(_invite_to(room_id))
    assert isinstance(invite, ev.Invite)
    assert invite.is_direct
    assert invite.inviter == alice.user_id
    await bob.rooms.join(room_id, direct_with=alice.user_id)
    await alice.wait_for(
        lambda e: (
            e
            if isinstance(e, ev.Membership) and e.user_id == bob.user_id and e.membership == "join"
            else None
        )
    )
    sent = await alice.messages.send_text(room_id, "Befund liegt vor")
    got = await bob.wait_for(
        lambda e: e if isinstance(e, ev.Message) and e.event_id == sent else None
    )
    assert got.body == "Befund liegt vor"
    assert got.encrypted
    assert got.sender == alice.user_id
    reply = await bob.messages.send_text(room_id, "Danke")
    back = await alice.wait_for(
        lambda e: e if isinstance(e, ev.Message) and e.event_id == reply else None
    )
    assert back.body == "Danke"
    assert back.encrypted
    data = bytes(range(256)) * 40
    file_event = await alice.messages.send_file(room_id, data, "befund.pdf", "application/pdf")
    media = await bob.wait_for(
        lambda e: e if isinstance(e, ev.Message) and e.event_id == file_event else None
    )
    assert media.attachment is not None
    assert media.attachment.encryption is not None
    assert await bob.messages.download(media.attachment) == data
    assert alice.decryption_failures == 0
    assert bob.decryption_failures == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_ml_123670_af_10063_a_chat_message_within_the_organisation_is_processed(
    federation: Federation, pair: tuple[TimClient, TimClient], tmp_path: Path
) -> None:
    alice, _ = pair
    colleague = await actor(federation, tmp_path, A, "team")
    colleague.start()
    try:
        room_id = await alice.rooms.create(colleague.user_id, name="Team")
        await colleague.wait_for(
            lambda e: e if isinstance(e, ev.Invite) and e.room_id == room_id else None
        )
        await colleague.rooms.join(room_id)
        await alice.wait_for(
            lambda e: (
                e
                if isinstance(e, ev.Membership)
                and e.room_id == room_id
                and e.membership == "join"
                and e.user_id == colleague.user_id
                else None
            )
        )
        sent = await alice.messages.send_text(room_id, "Visite um 9")
        got = await colleague.wait_for(
            lambda e: e if isinstance(e, ev.Message) and e.event_id == sent else None
        )
        assert got.body == "Visite um 9"
        assert got.encrypted
    finally:
        await colleague.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_rooms_have_the_tim_room_type_and_default_state(
    pair: tuple[TimClient, TimClient],
) -> None:
    alice, _ = pair
    room_id = await alice.rooms.create(name="Fallbesprechung", topic="intern")
    state = await alice.rooms.state(room_id)
    create = next(e for e in state if e["type"] == "m.room.create")
    assert create["content"]["type"] == ROOM_TYPE
    assert any(e["type"] == ROOM_STATE for e in state)
    assert any(e["type"] == "m.room.encryption" for e in state)
    assert create["content"]["room_version"] == "10"


@pytest.mark.asyncio(loop_scope="module")
async def test_edit_redact_receipt_typing_and_state(pair: tuple[TimClient, TimClient]) -> None:
    alice, bob = pair
    room_id = await alice.rooms.dm(bob.user_id)
    sent = await alice.messages.send_text(room_id, "Termin 10 Uhr")
    edit = await alice.messages.edit(room_id, sent, "Termin 11 Uhr")
    edited = await bob.wait_for(
        lambda e: e if isinstance(e, ev.Message) and e.event_id == edit else None
    )
    assert edited.replaces == sent
    assert edited.body == "Termin 11 Uhr"
    await bob.messages.read_receipt(room_id, edit)
    await bob.messages.typing(room_id, True)
    redaction = await alice.messages.redact(room_id, sent, "falsch")
    seen = await bob.wait_for(
        lambda e: e if isinstance(e, ev.Redaction) and e.event_id == redaction else None
    )
    assert seen.redacts == sent
    state_event = await alice.rooms.put_state(
        room_id, "de.gematik.tim.room.topic", {"topic": "neu"}
    )
    change = await bob.wait_for(
        lambda e: e if isinstance(e, ev.StateChange) and e.event_id == state_event else None
    )
    assert change.type == "de.gematik.tim.room.topic"
    assert change.content == {"topic": "neu"}
    state = await bob.rooms.state(room_id)
    assert {"topic": "neu"} in [e["content"] for e in state if e["type"] == change.type]


@pytest.mark.asyncio(loop_scope="module")
async def test_af_10061_a_refused_invite_is_a_typed_403(
    federation: Federation, pair: tuple[TimClient, TimClient], tmp_path: Path
) -> None:
    _, bob = pair
    stranger = await actor(federation, tmp_path, C, "stranger")
    try:
        with pytest.raises(TimkitError) as refused:
            await stranger.rooms.create(bob.user_id, direct=True)
        assert refused.value.status == 403
        assert refused.value.errcode == "M_FORBIDDEN"
    finally:
        await stranger.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_af_10104_ml_123896_user_directory_finds_actors_of_the_own_service(
    federation: Federation, pair: tuple[TimClient, TimClient], tmp_path: Path
) -> None:
    alice, _ = pair
    colleague = await actor(federation, tmp_path, A, "kollegin")
    try:
        assert await colleague.set_display_name("Muster", "Erika") == "Muster, Erika"
        with pytest.raises(TimkitError) as again:
            await colleague.set_display_name("Neu", "Name")
        assert again.value.status == 403
        hits = await alice.search_users("Muster")
        assert [h.user_id for h in hits] == [colleague.user_id]
        assert hits[0].display_name == "Muster, Erika"
        assert await alice.search_users("bob") == []  # remote users are not listed
    finally:
        await colleague.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_second_device_reads_earlier_messages_after_restore(
    federation: Federation, pair: tuple[TimClient, TimClient], tmp_path: Path
) -> None:
    """13.x multi-device: Bob's new device restores the room keys from the backup with the
    recovery key and decrypts what Alice sent before it existed."""
    alice, bob = pair
    room_id = await alice.rooms.dm(bob.user_id)
    earlier = await alice.messages.send_text(room_id, "vor dem zweiten Gerät")
    await bob.wait_for(lambda e: e if isinstance(e, ev.Message) and e.event_id == earlier else None)
    recovery_key = await bob.setup_recovery(PASSWORD)
    assert (await bob.backup_status()).count >= 1
    second = await TimClient.login(
        Profile("bob-2", tmp_path), client_options(federation), bob.user_id, PASSWORD
    )
    try:
        history = await second.messages.history(room_id)
        assert earlier in [e.event_id for e in history if isinstance(e, ev.Undecryptable)]
        restored = await second.recover(recovery_key)
        assert restored.imported >= 1
        assert restored.failed == 0
        history = await second.messages.history(room_id)
        readable = {e.event_id: e for e in history if isinstance(e, ev.Message)}
        assert readable[earlier].body == "vor dem zweiten Gerät"
        assert readable[earlier].encrypted
        devices = {d.device_id for d in await second.devices()}
        assert {bob.device_id, second.device_id} <= devices
    finally:
        await second.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_ml_129870_a_homeserver_outside_the_federation_cannot_log_in(
    federation: Federation, tmp_path: Path
) -> None:
    """C leaves the federation list at the VZD: its actor's login is refused right after the
    password step, the new device is logged out again and nothing is stored (runs last)."""
    url = str(federation.component("fhir-proxy")["url"])
    with tls_client(federation) as http:
        removed = http.delete(
            f"{url}/tim-provider-services/federation/{C}",
            headers={"Authorization": f"Bearer {provider_token(federation, url)}"},
        )
        assert removed.status_code == 204, removed.text
    user_id = federation.add_user(C, "outsider", PASSWORD)
    profile = Profile("outsider", tmp_path)
    steps: list[str] = []
    with pytest.raises(TimkitError) as refused:
        await TimClient.login(
            profile, client_options(federation), user_id, PASSWORD, progress=steps.append
        )
    assert refused.value.status == 403
    assert refused.value.requirement == "ML-129870"
    assert profile.load() is None
    assert not profile.store_dir.exists()
    device = steps[-1].rsplit(" ", 1)[-1]  # "angemeldet als …, Gerät <device>"
    async with httpx.AsyncClient(verify=tls_context(federation)) as http:
        login = await http.post(
            f"{federation.client_url(C)}/_matrix/client/v3/login",
            json={"type": "m.login.password", "user": "outsider", "password": PASSWORD},
        )
        token = login.json()["access_token"]
        devices = await http.get(
            f"{federation.client_url(C)}/_matrix/client/v3/devices",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert device not in [d["device_id"] for d in devices.json()["devices"]]


def tls_context(federation: Federation) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=federation.ca_cert)
