"""Cross-signing (spec "Cross-signing"): master, self-signing and user-signing keys.

The master key signs the self-signing and user-signing keys; the self-signing key signs the
user's own devices; each device signs the master key it trusts. Keys are Ed25519 seeds
(``cryptography``, byte-identical to libolm's ``PkSigning``); signatures cover canonical JSON
(:func:`~timkit.client.keys.codec.signable`). The private keys travel between the user's
devices only through secret storage, as ``m.cross_signing.master``, ``.self_signing`` and
``.user_signing`` (unpadded base64 of the seed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from timkit.client.fhir_api import json_object
from timkit.client.keys.codec import b64decode, b64encode, signable
from timkit.client.keys.device import OlmDevice
from timkit.client.keys.secret_storage import SecretStorage
from timkit.client.matrix_api import MatrixApi
from timkit.core.errors import Codes, TimkitError
from timkit.sdk.errors import raise_for_matrix_error

MASTER, SELF_SIGNING, USER_SIGNING = "master", "self_signing", "user_signing"
SECRET_NAMES = {
    MASTER: "m.cross_signing.master",
    SELF_SIGNING: "m.cross_signing.self_signing",
    USER_SIGNING: "m.cross_signing.user_signing",
}
UPLOAD_PATH = "/_matrix/client/v3/keys/device_signing/upload"
SIGNATURES_PATH = "/_matrix/client/v3/keys/signatures/upload"
QUERY_PATH = "/_matrix/client/v3/keys/query"


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 cross-signing key.

    Attributes:
        seed: the 32-byte private key.
    """

    seed: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key."""
        return cls(os.urandom(32))

    @classmethod
    def from_secret(cls, secret: str, name: str) -> SigningKey:
        """The key stored as secret ``name`` (unpadded base64 of the seed).

        Raises:
            TimkitError: 400 when the secret is not a 32-byte base64 seed.
        """
        seed = b64decode(secret, f"secret {name}")
        if len(seed) != 32:
            raise TimkitError(400, Codes.BAD_JSON, f"secret {name} is not a 32-byte key")
        return cls(seed)

    @property
    def public(self) -> str:
        """The public key in unpadded base64 (also the key's id after ``ed25519:``)."""
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        return b64encode(key.public_key().public_bytes_raw())

    @property
    def key_id(self) -> str:
        """``ed25519:<public key>``."""
        return f"ed25519:{self.public}"

    def secret(self) -> str:
        """The seed as stored in secret storage."""
        return b64encode(self.seed)

    def sign(self, obj: Mapping[str, Any]) -> str:
        """The unpadded base64 signature of ``obj``'s canonical JSON."""
        return b64encode(Ed25519PrivateKey.from_private_bytes(self.seed).sign(signable(obj)))


@dataclass(frozen=True)
class CrossSigningKeys:
    """The three cross-signing keys of one user."""

    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        """Three fresh keys."""
        return cls(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())


def with_signature(
    obj: Mapping[str, Any], user_id: str, key_id: str, signature: str
) -> dict[str, Any]:
    """A copy of ``obj`` (without ``unsigned``) carrying only the one given signature."""
    signed = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signed["signatures"] = {user_id: {key_id: signature}}
    return signed


def verify(obj: Mapping[str, Any], user_id: str, key_id: str, public_key: str) -> bool:
    """Whether ``obj`` carries a valid signature of ``user_id``'s key ``key_id``."""
    signatures = obj.get("signatures")
    by_user = signatures.get(user_id) if isinstance(signatures, dict) else None
    signature = by_user.get(key_id) if isinstance(by_user, dict) else None
    if not isinstance(signature, str):
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(b64decode(public_key, "public key"))
        key.verify(b64decode(signature, "signature"), signable(obj))
    except (TimkitError, InvalidSignature, ValueError):
        return False
    return True


def key_object(user_id: str, usage: str, key: SigningKey) -> dict[str, Any]:
    """The published form of a cross-signing key (``CrossSigningKey``), unsigned."""
    return {"user_id": user_id, "usage": [usage], "keys": {key.key_id: key.public}}


def upload_body(user_id: str, keys: CrossSigningKeys) -> dict[str, Any]:
    """The ``device_signing/upload`` body: master, and the other two signed by the master."""
    master = key_object(user_id, MASTER, keys.master)
    body: dict[str, Any] = {"master_key": master}
    for usage, key in ((SELF_SIGNING, keys.self_signing), (USER_SIGNING, keys.user_signing)):
        obj = key_object(user_id, usage, key)
        body[f"{usage}_key"] = with_signature(
            obj, user_id, keys.master.key_id, keys.master.sign(obj)
        )
    return body


async def upload(api: MatrixApi, user_id: str, keys: CrossSigningKeys, password: str) -> None:
    """Publish ``keys``, answering user-interactive auth with ``m.login.password``.

    The first request goes without ``auth`` (a first setup needs none, MSC3967); a 401
    carrying a UIA ``session`` is retried once with the password.

    Raises:
        TimkitError: the homeserver refused (e.g. 401/403 for a wrong password), or offers
            no password stage (401 ``M_FORBIDDEN`` naming the offered flows).
    """
    body = upload_body(user_id, keys)
    response = await _post(api, UPLOAD_PATH, body)
    if response.status_code == 401:
        uia = json_object(response)
        session = uia.get("session")
        flows = uia.get("flows")
        stages = (
            [f.get("stages") for f in flows if isinstance(f, dict)]
            if isinstance(flows, list)
            else []
        )
        if not isinstance(session, str) or ["m.login.password"] not in stages:
            raise TimkitError(
                401,
                Codes.FORBIDDEN,
                f"replacing the cross-signing keys needs an auth flow timkit lacks: {stages}",
            )
        body["auth"] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
            "session": session,
        }
        response = await _post(api, UPLOAD_PATH, body)
    raise_for_matrix_error(response)


async def _post(api: MatrixApi, path: str, body: Mapping[str, Any]) -> httpx.Response:
    try:
        return await api.http.post(api.base_url + path, json=body, headers=api.headers())
    except httpx.HTTPError as e:
        raise TimkitError(
            502, Codes.UPSTREAM, f"{api.base_url} cannot be reached: {type(e).__name__}"
        ) from e


@dataclass(frozen=True)
class PublishedKeys:
    """What ``/keys/query`` says about one user's own device and cross-signing keys.

    Attributes:
        device: the device's ``DeviceKeys`` object.
        master: the published master key object, ``None`` before cross-signing.
        self_signing: the published self-signing key object, or ``None``.
    """

    device: dict[str, Any]
    master: dict[str, Any] | None
    self_signing: dict[str, Any] | None


def single_key(obj: Mapping[str, Any] | None) -> str | None:
    """The one public key of a cross-signing key object (``None`` when malformed)."""
    keys = obj.get("keys") if obj else None
    if not isinstance(keys, dict) or len(keys) != 1:
        return None
    value = next(iter(keys.values()))
    return value if isinstance(value, str) else None


async def query(api: MatrixApi, olm: OlmDevice, user_id: str, device_id: str) -> PublishedKeys:
    """The published keys of this device and of its user, checked against the device.

    Raises:
        TimkitError: 409 ``M_NOT_FOUND`` when the device has not uploaded its keys yet
            (sync first); 403 when the homeserver publishes another Ed25519 key for this
            device than the device holds.
    """
    body = await api.call("POST", QUERY_PATH, json={"device_keys": {user_id: [device_id]}})
    devices = body.get("device_keys", {}).get(user_id, {})
    device = devices.get(device_id) if isinstance(devices, dict) else None
    if not isinstance(device, dict):
        raise TimkitError(
            409, Codes.NOT_FOUND, f"device {device_id} has not uploaded its keys yet (sync first)"
        )
    published = device.get("keys", {}).get(f"ed25519:{device_id}")
    if published != olm.account.identity_keys["ed25519"]:
        raise TimkitError(
            403,
            Codes.FORBIDDEN,
            f"the homeserver publishes another signing key for device {device_id}",
        )
    master = body.get("master_keys", {}).get(user_id)
    self_signing = body.get("self_signing_keys", {}).get(user_id)
    return PublishedKeys(
        device,
        master if isinstance(master, dict) else None,
        self_signing if isinstance(self_signing, dict) else None,
    )


async def sign_device(
    api: MatrixApi,
    olm: OlmDevice,
    user_id: str,
    device_id: str,
    master: SigningKey,
    self_signing: SigningKey,
) -> None:
    """Sign this device with ``self_signing`` and the master key with this device.

    Both keys must be the ones the homeserver publishes for the user: a homeserver that
    swapped them in gets no signature.

    Raises:
        TimkitError: 403 when the published master or self-signing key differs from the
            given ones; 502 when the homeserver reports a signature as failed.
    """
    published = await query(api, olm, user_id, device_id)
    if single_key(published.master) != master.public or published.master is None:
        raise TimkitError(
            403, Codes.FORBIDDEN, "the homeserver publishes another master key for this user"
        )
    if single_key(published.self_signing) != self_signing.public:
        raise TimkitError(403, Codes.FORBIDDEN, "the homeserver publishes another self-signing key")
    device = with_signature(
        published.device, user_id, self_signing.key_id, self_signing.sign(published.device)
    )
    master_obj = published.master
    device_signature = olm.account.sign(signable(master_obj).decode())
    signed_master = with_signature(master_obj, user_id, f"ed25519:{device_id}", device_signature)
    answer = await api.call(
        "POST",
        SIGNATURES_PATH,
        json={user_id: {device_id: device, master.public: signed_master}},
    )
    failures = answer.get("failures")
    if failures:
        raise TimkitError(
            502, Codes.UPSTREAM, f"the homeserver refused signatures: {sorted(failures)}"
        )


async def store(storage: SecretStorage, keys: CrossSigningKeys) -> None:
    """Put the three private keys into secret storage."""
    await storage.store(SECRET_NAMES[MASTER], keys.master.secret())
    await storage.store(SECRET_NAMES[SELF_SIGNING], keys.self_signing.secret())
    await storage.store(SECRET_NAMES[USER_SIGNING], keys.user_signing.secret())


async def load(storage: SecretStorage) -> CrossSigningKeys:
    """The three private keys from secret storage (TimkitError as :meth:`SecretStorage.load`)."""
    loaded = []
    for usage in (MASTER, SELF_SIGNING, USER_SIGNING):
        name = SECRET_NAMES[usage]
        loaded.append(SigningKey.from_secret(await storage.load(name), name))
    return CrossSigningKeys(*loaded)


def device_trusts_master(
    master: Mapping[str, Any], user_id: str, device_id: str, ed25519: str
) -> bool:
    """Whether the master key object carries this device's own valid signature."""
    return verify(master, user_id, f"ed25519:{device_id}", ed25519)
