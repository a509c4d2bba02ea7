"""Key backup ``m.megolm_backup.v1.curve25519-aes-sha2``: session_data, auth_data, import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import vodozemac
from nio.crypto import InboundGroupSession, OlmAccount
from nio.crypto.memorystores import GroupSessionStore
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import verify_signed_json

from timkit.client.keys.backup import (
    MEGOLM,
    _import,
    auth_data,
    decrypt_session,
    encrypt_session,
    export,
    new_backup_key,
    public_key_of,
)
from timkit.client.keys.codec import b64decode, b64encode
from timkit.client.keys.cross_signing import SigningKey
from timkit.client.keys.device import GroupSessions
from timkit.core.errors import TimkitError

USER, DEVICE, ROOM = (
    "@arzt:praxis-sonnenschein.tim.test",
    "GERAET1",
    "!raum:praxis-sonnenschein.tim.test",
)


@dataclass
class Device:
    """A real vodozemac account in the shape the keys module reads from nio's OlmMachine."""

    user_id: str
    device_id: str
    account: OlmAccount
    inbound_group_store: GroupSessions = field(default_factory=GroupSessionStore)

    def save_inbound_group_session(self, session: Any) -> None:
        raise AssertionError("not used here")


def _session() -> tuple[vodozemac.GroupSession, InboundGroupSession]:
    outbound = vodozemac.GroupSession()
    inbound = InboundGroupSession(
        outbound.session_key.to_base64(), "ed25519-of-sender", "curve-of-sender", ROOM
    )
    return outbound, inbound


def test_session_data_round_trips_through_pk_encryption() -> None:
    private = new_backup_key()
    _, inbound = _session()
    data = encrypt_session(public_key_of(private), export(inbound))
    assert set(data) == {"ciphertext", "mac", "ephemeral"}
    assert len(b64decode(data["ephemeral"], "e")) == 32
    assert len(b64decode(data["mac"], "m")) == 8
    assert decrypt_session(private, data) == export(inbound)


def test_session_data_from_the_vodozemac_primitive_decrypts() -> None:
    """Encrypted by vodozemac directly (as libolm-era clients do): the fields map one to one."""
    private = new_backup_key()
    decryption = vodozemac.PkDecryption.from_key(vodozemac.Curve25519SecretKey.from_bytes(private))
    message = vodozemac.PkEncryption.from_key(decryption.public_key).encrypt(b'{"a": 1}')
    data = {
        "ciphertext": b64encode(message.ciphertext),
        "mac": b64encode(message.mac),
        "ephemeral": b64encode(message.ephemeral_key),
    }
    assert decrypt_session(private, data) == {"a": 1}


def test_tampered_session_data_or_another_backup_key_is_refused() -> None:
    private = new_backup_key()
    data = encrypt_session(public_key_of(private), {"a": 1})
    for bad in (
        {**data, "mac": b64encode(bytes(8))},
        {**data, "ciphertext": b64encode(bytes(16))},
        {**data, "ephemeral": "kein base64"},
        "not an object",
    ):
        with pytest.raises(TimkitError) as raised:
            decrypt_session(private, bad)
        assert raised.value.status == 400
    with pytest.raises(TimkitError):
        decrypt_session(new_backup_key(), data)


def test_an_exported_session_imports_and_decrypts_the_senders_messages() -> None:
    private = new_backup_key()
    outbound, inbound = _session()
    ciphertext = outbound.encrypt(b"Befund liegt vor").to_base64()
    backed_up = {"session_data": encrypt_session(public_key_of(private), export(inbound))}
    restored = _import(private, ROOM, inbound.id, backed_up)
    assert isinstance(restored, InboundGroupSession)
    assert restored.sender_key == "curve-of-sender"
    assert restored.ed25519 == "ed25519-of-sender"
    assert restored.decrypt(ciphertext)[0] == "Befund liegt vor"


def test_a_session_filed_under_another_id_or_not_megolm_is_not_imported() -> None:
    private, public = new_backup_key(), None
    public = public_key_of(private)
    _, inbound = _session()
    _, other = _session()
    exported = export(inbound)
    assert (
        _import(private, ROOM, other.id, {"session_data": encrypt_session(public, exported)})
        is None
    )
    not_megolm = {**exported, "algorithm": "m.olm.v1.curve25519-aes-sha2"}
    assert (
        _import(private, ROOM, inbound.id, {"session_data": encrypt_session(public, not_megolm)})
        is None
    )
    broken_key = {**exported, "session_key": "AAAA"}
    assert (
        _import(private, ROOM, inbound.id, {"session_data": encrypt_session(public, broken_key)})
        is None
    )
    assert _import(private, ROOM, inbound.id, {"session_data": {"mac": "x"}}) is None
    assert exported["algorithm"] == MEGOLM


def test_auth_data_is_signed_by_the_device_and_the_master_key() -> None:
    account, master = OlmAccount(), SigningKey.generate()
    private = new_backup_key()
    data = auth_data(public_key_of(private), Device(USER, DEVICE, account), USER, DEVICE, master)
    assert data["public_key"] == public_key_of(private)
    device_key = decode_verify_key_bytes(
        f"ed25519:{DEVICE}", b64decode(account.identity_keys["ed25519"], "k")
    )
    verify_signed_json(data, USER, device_key)
    verify_signed_json(
        data, USER, decode_verify_key_bytes(master.key_id, b64decode(master.public, "k"))
    )
    assert set(data["signatures"][USER]) == {f"ed25519:{DEVICE}", master.key_id}
