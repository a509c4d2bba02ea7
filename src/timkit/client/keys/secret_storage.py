"""Secret storage (SSSS) with ``m.secret_storage.v1.aes-hmac-sha2`` (spec "Secrets").

A secret storage key is 32 random bytes (shown to the actor as the recovery key). Each
secret ``name`` is encrypted under keys derived by HKDF-SHA-256 (salt: 32 zero bytes,
info: ``name``, 64 bytes: AES key then MAC key) with AES-256-CTR and a random IV whose bit 63
is zero, and authenticated by HMAC-SHA-256 over the ciphertext. The key's description
(``m.secret_storage.key.<id>`` account data) carries the IV and MAC of 32 zero bytes
encrypted with the empty name, so a wrong key is recognised before any secret is touched.
Secrets live in the account data event named after them as ``{"encrypted": {id: {...}}}``.
"""

from __future__ import annotations

import hmac
import os
import secrets
import string
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from timkit.client.keys.codec import b64decode, b64encode
from timkit.client.matrix_api import MatrixApi, segment
from timkit.core.errors import Codes, TimkitError

ALGORITHM = "m.secret_storage.v1.aes-hmac-sha2"
DEFAULT_KEY = "m.secret_storage.default_key"
KEY_PREFIX = "m.secret_storage.key."


@dataclass(frozen=True)
class Encrypted:
    """One secret encrypted with one key: the account data's ``{iv, ciphertext, mac}``."""

    iv: str
    ciphertext: str
    mac: str

    def to_json(self) -> dict[str, str]:
        """The JSON object stored under the key id."""
        return {"iv": self.iv, "ciphertext": self.ciphertext, "mac": self.mac}


def derive_keys(key: bytes, name: str) -> tuple[bytes, bytes]:
    """The AES-256 key and the HMAC-SHA-256 key for secret ``name`` under ``key``."""
    derived = HKDF(algorithm=hashes.SHA256(), length=64, salt=bytes(32), info=name.encode()).derive(
        key
    )
    return derived[:32], derived[32:]


def _ctr(aes_key: bytes, iv: bytes, data: bytes) -> bytes:
    cipher = Cipher(algorithms.AES(aes_key), modes.CTR(iv))
    encryptor = cipher.encryptor()
    return encryptor.update(data) + encryptor.finalize()


def new_iv() -> bytes:
    """16 random bytes with bit 63 cleared (the spec's AES-CTR interoperability rule)."""
    iv = bytearray(os.urandom(16))
    iv[8] &= 0x7F
    return bytes(iv)


def encrypt(key: bytes, name: str, plaintext: bytes, iv: bytes | None = None) -> Encrypted:
    """Encrypt ``plaintext`` as secret ``name`` (a fresh IV unless ``iv`` is given)."""
    aes_key, mac_key = derive_keys(key, name)
    iv = iv if iv is not None else new_iv()
    ciphertext = _ctr(aes_key, iv, plaintext)
    mac = hmac.new(mac_key, ciphertext, sha256).digest()
    return Encrypted(b64encode(iv), b64encode(ciphertext), b64encode(mac))


def decrypt(key: bytes, name: str, encrypted: Any) -> bytes:
    """The plaintext of secret ``name``, after its MAC checked out.

    Raises:
        TimkitError: 400 ``M_BAD_JSON`` when ``encrypted`` is malformed; 403
            ``M_FORBIDDEN`` when the MAC does not match (wrong key or tampered data).
    """
    if not isinstance(encrypted, dict):
        raise TimkitError(400, Codes.BAD_JSON, f"secret {name} is not an encrypted object")
    iv = b64decode(encrypted.get("iv"), f"the iv of secret {name}")
    ciphertext = b64decode(encrypted.get("ciphertext"), f"the ciphertext of secret {name}")
    mac = b64decode(encrypted.get("mac"), f"the mac of secret {name}")
    if len(iv) != 16:
        raise TimkitError(400, Codes.BAD_JSON, f"the iv of secret {name} is not 16 bytes")
    aes_key, mac_key = derive_keys(key, name)
    if not hmac.compare_digest(hmac.new(mac_key, ciphertext, sha256).digest(), mac):
        raise TimkitError(
            403, Codes.FORBIDDEN, f"secret {name} failed its MAC check (wrong key or tampered)"
        )
    return _ctr(aes_key, iv, ciphertext)


def key_description(key: bytes, iv: bytes | None = None) -> dict[str, str]:
    """The ``m.secret_storage.key.<id>`` content: algorithm plus the zero-string check."""
    check = encrypt(key, "", bytes(32), iv)
    return {"algorithm": ALGORITHM, "iv": check.iv, "mac": check.mac}


def check_key(key: bytes, description: Any, key_id: str) -> None:
    """Verify that ``key`` is the secret storage key ``description`` describes.

    Raises:
        TimkitError: 400 when the description is malformed or not ``aes-hmac-sha2``; 403
            ``M_FORBIDDEN`` when the key does not match (a wrong recovery key).
    """
    if not isinstance(description, dict) or description.get("algorithm") != ALGORITHM:
        raise TimkitError(400, Codes.BAD_JSON, f"secret storage key {key_id} is not {ALGORITHM}")
    iv = b64decode(description.get("iv"), f"the iv of secret storage key {key_id}")
    mac = b64decode(description.get("mac"), f"the mac of secret storage key {key_id}")
    if len(iv) != 16:
        raise TimkitError(400, Codes.BAD_JSON, f"the iv of secret storage key {key_id} is bad")
    expected = b64decode(encrypt(key, "", bytes(32), iv).mac, "mac")
    if not hmac.compare_digest(expected, mac):
        raise TimkitError(
            403,
            Codes.FORBIDDEN,
            f"the recovery key does not open secret storage key {key_id}",
        )


def _account_data_path(user_id: str, event_type: str) -> str:
    return f"/_matrix/client/v3/user/{segment(user_id)}/account_data/{segment(event_type)}"


async def get_account_data(api: MatrixApi, user_id: str, event_type: str) -> dict[str, Any]:
    """The account data ``event_type`` of ``user_id`` (TimkitError 404 when absent)."""
    return await api.call("GET", _account_data_path(user_id, event_type))


async def put_account_data(
    api: MatrixApi, user_id: str, event_type: str, content: dict[str, Any]
) -> None:
    """Set the account data ``event_type`` of ``user_id`` to ``content``."""
    await api.call("PUT", _account_data_path(user_id, event_type), json=content)


@dataclass(frozen=True)
class SecretStorage:
    """An opened secret storage key of one account.

    Attributes:
        api: the logged-in Matrix API.
        user_id: the account.
        key_id: the key's id (``m.secret_storage.key.<key_id>``).
        key: the 32-byte key.
    """

    api: MatrixApi
    user_id: str
    key_id: str
    key: bytes

    async def store(self, name: str, secret: str) -> None:
        """Encrypt ``secret`` and store it as account data ``name``."""
        encrypted = encrypt(self.key, name, secret.encode())
        await put_account_data(
            self.api, self.user_id, name, {"encrypted": {self.key_id: encrypted.to_json()}}
        )

    async def load(self, name: str) -> str:
        """The secret ``name`` decrypted with this key.

        Raises:
            TimkitError: 404 when the secret or its copy for this key is missing; 403 when
                its MAC fails; 400 when it is malformed or not UTF-8.
        """
        content = await get_account_data(self.api, self.user_id, name)
        encrypted = content.get("encrypted")
        if not isinstance(encrypted, dict) or self.key_id not in encrypted:
            raise TimkitError(
                404, Codes.NOT_FOUND, f"secret {name} is not stored for key {self.key_id}"
            )
        plaintext = decrypt(self.key, name, encrypted[self.key_id])
        try:
            return plaintext.decode()
        except UnicodeDecodeError as e:
            raise TimkitError(400, Codes.BAD_JSON, f"secret {name} is not UTF-8") from e


def _new_key_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


async def create(api: MatrixApi, user_id: str) -> SecretStorage:
    """Create a random secret storage key, publish its description and make it the default."""
    key, key_id = os.urandom(32), _new_key_id()
    await put_account_data(api, user_id, KEY_PREFIX + key_id, key_description(key))
    await put_account_data(api, user_id, DEFAULT_KEY, {"key": key_id})
    return SecretStorage(api, user_id, key_id, key)


async def open_default(api: MatrixApi, user_id: str, key: bytes) -> SecretStorage:
    """Open the account's default secret storage key with ``key`` (from the recovery key).

    Raises:
        TimkitError: 404 when the account has no secret storage; 403 when ``key`` is not
            the default key; 400 when the account data is malformed.
    """
    try:
        default = await get_account_data(api, user_id, DEFAULT_KEY)
    except TimkitError as e:
        if e.status == 404:
            raise TimkitError(
                404, Codes.NOT_FOUND, "this account has no secret storage (set up recovery first)"
            ) from e
        raise
    key_id = default.get("key")
    if not isinstance(key_id, str) or not key_id:
        raise TimkitError(400, Codes.BAD_JSON, f"{DEFAULT_KEY} names no key")
    description = await get_account_data(api, user_id, KEY_PREFIX + key_id)
    check_key(key, description, key_id)
    return SecretStorage(api, user_id, key_id, key)
