"""Server-side key backup v1, ``m.megolm_backup.v1.curve25519-aes-sha2`` (spec "Server-side
key backups").

A backup version holds a Curve25519 public key in its ``auth_data``, signed by the creating
device and the user's master key. Each inbound Megolm session is uploaded as
``session_data`` = the vodozemac ``PkEncryption`` of its JSON export (``ciphertext``, ``mac``,
``ephemeral``). The private key is kept in secret storage as ``m.megolm_backup.v1``; with it
a new device decrypts every session and imports it into nio's Olm machine, so it reads
messages sent before it logged in.

Before uploading, a device checks that the backup's key is signed by a master key this device
has signed itself, so a homeserver cannot swap in its own key and collect the sessions.
Restored sessions are imported only when their id matches the id they were filed under.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import vodozemac
from nio.crypto import InboundGroupSession

from timkit.client.keys.codec import b64decode, b64encode, signable
from timkit.client.keys.cross_signing import (
    SigningKey,
    device_trusts_master,
    query,
    single_key,
    verify,
    with_signature,
)
from timkit.client.keys.device import OlmDevice
from timkit.client.matrix_api import MatrixApi
from timkit.core.errors import Codes, TimkitError

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
SECRET_NAME = "m.megolm_backup.v1"  # noqa: S105 - an account data type, not a secret
MEGOLM = "m.megolm.v1.aes-sha2"
VERSION_PATH = "/_matrix/client/v3/room_keys/version"
KEYS_PATH = "/_matrix/client/v3/room_keys/keys"


@dataclass(frozen=True)
class BackupVersion:
    """The current backup version as the homeserver describes it.

    Attributes:
        version: the version id.
        algorithm: its algorithm (only :data:`ALGORITHM` is used by timkit).
        auth_data: the signed ``auth_data`` (``public_key``, ``signatures``).
        count: the number of keys stored.
        etag: changes whenever keys are added.
    """

    version: str
    algorithm: str
    auth_data: dict[str, Any]
    count: int
    etag: str

    @property
    def public_key(self) -> str | None:
        """The backup's Curve25519 public key, when ``auth_data`` has one."""
        key = self.auth_data.get("public_key")
        return key if isinstance(key, str) else None


def new_backup_key() -> bytes:
    """A fresh Curve25519 private key for a backup version."""
    return vodozemac.Curve25519SecretKey().to_bytes()


def public_key_of(private_key: bytes) -> str:
    """The unpadded base64 public key of a backup private key."""
    decryption = vodozemac.PkDecryption.from_key(
        vodozemac.Curve25519SecretKey.from_bytes(private_key)
    )
    return str(decryption.public_key.to_base64())


def encrypt_session(public_key: str, session: dict[str, Any]) -> dict[str, str]:
    """``session_data`` for one exported session under the backup's ``public_key``."""
    encryption = vodozemac.PkEncryption.from_key(
        vodozemac.Curve25519PublicKey.from_base64(public_key)
    )
    message = encryption.encrypt(json.dumps(session).encode())
    # Encoded from the attributes: Message.to_base64() returns its parts out of documented
    # order (client-anchors §3.2).
    return {
        "ciphertext": b64encode(message.ciphertext),
        "mac": b64encode(message.mac),
        "ephemeral": b64encode(message.ephemeral_key),
    }


def decrypt_session(private_key: bytes, session_data: Any) -> dict[str, Any]:
    """The exported session in ``session_data``.

    Raises:
        TimkitError: 400 when ``session_data`` is malformed, does not decrypt (MAC) or is
            not a JSON object.
    """
    if not isinstance(session_data, dict):
        raise TimkitError(400, Codes.BAD_JSON, "session_data is not an object")
    ciphertext = b64decode(session_data.get("ciphertext"), "session_data.ciphertext")
    mac = b64decode(session_data.get("mac"), "session_data.mac")
    ephemeral = b64decode(session_data.get("ephemeral"), "session_data.ephemeral")
    try:
        decryption = vodozemac.PkDecryption.from_key(
            vodozemac.Curve25519SecretKey.from_bytes(private_key)
        )
        plaintext = decryption.decrypt(vodozemac.Message(ciphertext, mac, ephemeral))
        session = json.loads(plaintext)
    except ValueError as e:  # vodozemac's PkDecodeException, JSON and UTF-8 errors
        raise TimkitError(400, Codes.BAD_JSON, "session_data does not decrypt") from e
    if not isinstance(session, dict):
        raise TimkitError(400, Codes.BAD_JSON, "session_data is not a JSON object")
    return session


def export(session: Any) -> dict[str, Any]:
    """The backup plaintext of an nio ``InboundGroupSession`` (spec ``BackedUpSessionData``)."""
    return {
        "algorithm": MEGOLM,
        "forwarding_curve25519_key_chain": list(session.forwarding_chain),
        "sender_key": session.sender_key,
        "sender_claimed_keys": {"ed25519": session.ed25519},
        "session_key": session.export_session(session.first_known_index),
    }


def auth_data(
    public_key: str, olm: OlmDevice, user_id: str, device_id: str, master: SigningKey
) -> dict[str, Any]:
    """``auth_data`` with ``public_key``, signed by this device and the master key."""
    unsigned: dict[str, Any] = {"public_key": public_key}
    message = signable(unsigned)
    data = with_signature(unsigned, user_id, master.key_id, master.sign(unsigned))
    data["signatures"][user_id][f"ed25519:{device_id}"] = olm.account.sign(message.decode())
    return data


async def create_version(api: MatrixApi, data: dict[str, Any]) -> str:
    """Create a backup version with ``auth_data`` ``data``; its version id."""
    answer = await api.call("POST", VERSION_PATH, json={"algorithm": ALGORITHM, "auth_data": data})
    version = answer.get("version")
    if not isinstance(version, str):
        raise TimkitError(502, Codes.UPSTREAM, "the homeserver created a backup without a version")
    return version


async def current_version(api: MatrixApi) -> BackupVersion | None:
    """The current backup version, ``None`` when the account has none."""
    try:
        body = await api.call("GET", VERSION_PATH)
    except TimkitError as e:
        if e.status == 404:
            return None
        raise
    version, algorithm, data = body.get("version"), body.get("algorithm"), body.get("auth_data")
    if not isinstance(version, str) or not isinstance(algorithm, str) or not isinstance(data, dict):
        raise TimkitError(502, Codes.UPSTREAM, "the homeserver's backup version is incomplete")
    count = body.get("count")
    return BackupVersion(
        version, algorithm, data, count if isinstance(count, int) else 0, str(body.get("etag", ""))
    )


async def trusted_version(api: MatrixApi, olm: OlmDevice) -> BackupVersion:
    """The current backup version, after checking this device may upload keys to it.

    Trusted means: the algorithm is :data:`ALGORITHM` and ``auth_data`` is signed by the
    user's master key, which carries this device's own signature.

    Raises:
        TimkitError: 404 when there is no backup; 403 when it is not trusted (naming why).
    """
    backup = await current_version(api)
    if backup is None:
        raise TimkitError(404, Codes.NOT_FOUND, "this account has no key backup")
    if backup.algorithm != ALGORITHM or backup.public_key is None:
        raise TimkitError(403, Codes.FORBIDDEN, f"backup {backup.version} is not {ALGORITHM}")
    user_id, device_id = olm.user_id, olm.device_id
    published = await query(api, olm, user_id, device_id)
    master = single_key(published.master)
    if (
        published.master is None
        or master is None
        or not device_trusts_master(
            published.master, user_id, device_id, olm.account.identity_keys["ed25519"]
        )
    ):
        raise TimkitError(
            403,
            Codes.FORBIDDEN,
            "this device has not verified the account's master key (recover first)",
        )
    if not verify(backup.auth_data, user_id, f"ed25519:{master}", master):
        raise TimkitError(
            403, Codes.FORBIDDEN, f"backup {backup.version} is not signed by the master key"
        )
    return backup


async def backed_up_ids(api: MatrixApi, version: str) -> dict[tuple[str, str], int]:
    """``(room_id, session_id)`` → ``first_message_index`` of every key in ``version``."""
    body = await api.call("GET", KEYS_PATH, params={"version": version})
    found: dict[tuple[str, str], int] = {}
    for room_id, room in _items(body.get("rooms")):
        for session_id, data in _items(room.get("sessions") if isinstance(room, dict) else None):
            index = data.get("first_message_index") if isinstance(data, dict) else None
            found[(room_id, session_id)] = index if isinstance(index, int) else 0
    return found


def _items(value: Any) -> Iterable[tuple[str, Any]]:
    return value.items() if isinstance(value, dict) else ()


async def upload(api: MatrixApi, olm: OlmDevice, version: str, public_key: str) -> int:
    """Upload every session of ``olm`` that ``version`` lacks (or has from a later index).

    Returns:
        How many sessions were uploaded.
    """
    known = await backed_up_ids(api, version)
    rooms: dict[str, dict[str, Any]] = {}
    count = 0
    for session in olm.inbound_group_store:
        first = session.first_known_index
        if known.get((session.room_id, session.id), first + 1) <= first:
            continue
        sessions = rooms.setdefault(session.room_id, {"sessions": {}})["sessions"]
        sessions[session.id] = {
            "first_message_index": first,
            "forwarded_count": len(session.forwarding_chain),
            "is_verified": False,
            "session_data": encrypt_session(public_key, export(session)),
        }
        count += 1
    if count:
        await api.call("PUT", KEYS_PATH, params={"version": version}, json={"rooms": rooms})
    return count


@dataclass(frozen=True)
class Restored:
    """What a restore did: sessions in the backup, imported, and refused as undecryptable."""

    total: int
    imported: int
    failed: int


async def restore(api: MatrixApi, olm: OlmDevice, version: str, private_key: bytes) -> Restored:
    """Decrypt every session of backup ``version`` and import it into ``olm``.

    Sessions already held from the same or an earlier index are kept; a session whose data
    does not decrypt, is not Megolm, or whose key has another id than it was filed under is
    counted as failed and not imported.
    """
    body = await api.call("GET", KEYS_PATH, params={"version": version})
    total = imported = failed = 0
    for room_id, room in _items(body.get("rooms")):
        for session_id, data in _items(room.get("sessions") if isinstance(room, dict) else None):
            total += 1
            session = _import(private_key, room_id, session_id, data)
            if session is None:
                failed += 1
                continue
            held = olm.inbound_group_store.get(room_id, session.sender_key, session_id)
            if held is not None and held.first_known_index <= session.first_known_index:
                continue
            olm.inbound_group_store.add(session)
            olm.save_inbound_group_session(session)
            imported += 1
    return Restored(total, imported, failed)


def _import(private_key: bytes, room_id: str, session_id: str, data: Any) -> Any:
    try:
        exported = decrypt_session(
            private_key, data.get("session_data") if isinstance(data, dict) else None
        )
    except TimkitError:
        return None
    claimed = exported.get("sender_claimed_keys")
    signing_key = claimed.get("ed25519") if isinstance(claimed, dict) else None
    sender_key, session_key = exported.get("sender_key"), exported.get("session_key")
    chain = exported.get("forwarding_curve25519_key_chain", [])
    if (
        exported.get("algorithm") != MEGOLM
        or not isinstance(signing_key, str)
        or not isinstance(sender_key, str)
        or not isinstance(session_key, str)
        or not isinstance(chain, list)
    ):
        return None
    try:
        session = InboundGroupSession.import_session(
            session_key, signing_key, sender_key, room_id, [str(k) for k in chain]
        )
    except ValueError:  # vodozemac's SessionKeyDecodeException
        return None
    return session if session.id == session_id else None
