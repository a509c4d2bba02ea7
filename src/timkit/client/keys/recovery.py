"""The recovery facade TimClient and ``timkit client keys backup …`` call.

- :func:`setup_recovery`: new secret storage key (returned as the recovery key), new
  cross-signing keys (this device signed), a new backup version holding this device's
  Megolm sessions, and all private keys in secret storage.
- :func:`recover`: on another device of the same user, open secret storage with the
  recovery key, cross-sign this device, and restore the backup into its Olm machine.
- :func:`upload_new_sessions`: back up the sessions the current backup lacks.
- :func:`backup_status`: the current backup version as the homeserver reports it.

Every refusal is a :class:`~timkit.core.errors.TimkitError`; a wrong or mistyped recovery
key changes nothing on the account or in the device's store.
"""

from __future__ import annotations

from dataclasses import dataclass

from timkit.client.keys import backup, cross_signing, secret_storage
from timkit.client.keys.codec import b64decode, b64encode
from timkit.client.keys.device import OlmDevice
from timkit.client.keys.recovery_key import decode_recovery_key, encode_recovery_key
from timkit.client.matrix_api import MatrixApi
from timkit.core.errors import Codes, TimkitError


@dataclass(frozen=True)
class RestoreResult:
    """What :func:`recover` did.

    Attributes:
        version: the backup version restored from.
        total: sessions in the backup.
        imported: sessions newly imported into this device.
        failed: sessions refused (not decryptable, not Megolm, or filed under another id).
    """

    version: str
    total: int
    imported: int
    failed: int


@dataclass(frozen=True)
class BackupStatus:
    """The account's current key backup.

    Attributes:
        enabled: whether a backup version exists.
        version: its id (``None`` when disabled).
        algorithm: its algorithm (``None`` when disabled).
        count: keys stored.
        etag: changes whenever keys are added (empty when disabled).
    """

    enabled: bool
    version: str | None = None
    algorithm: str | None = None
    count: int = 0
    etag: str = ""


async def setup_recovery(
    api: MatrixApi, olm: OlmDevice, user_id: str, device_id: str, password: str
) -> str:
    """Bootstrap cross-signing, secret storage and key backup; return the recovery key.

    Replaces any earlier cross-signing identity, secret storage default key and backup
    version of the account (``password`` answers the homeserver's user-interactive auth).

    Raises:
        TimkitError: the homeserver refused a step (status and errcode), e.g. a wrong
            password; 409 when this device has not uploaded its keys yet.
    """
    # Checked before anything changes: new keys whose device cannot be signed would be lost.
    await cross_signing.query(api, olm, user_id, device_id)
    keys = cross_signing.CrossSigningKeys.generate()
    await cross_signing.upload(api, user_id, keys, password)
    await cross_signing.sign_device(api, olm, user_id, device_id, keys.master, keys.self_signing)
    storage = await secret_storage.create(api, user_id)
    await cross_signing.store(storage, keys)
    private_key = backup.new_backup_key()
    public_key = backup.public_key_of(private_key)
    version = await backup.create_version(
        api, backup.auth_data(public_key, olm, user_id, device_id, keys.master)
    )
    await storage.store(backup.SECRET_NAME, b64encode(private_key))
    await backup.upload(api, olm, version, public_key)
    return encode_recovery_key(storage.key)


async def recover(
    api: MatrixApi, olm: OlmDevice, user_id: str, device_id: str, recovery_key: str
) -> RestoreResult:
    """Cross-sign this device and restore the key backup with ``recovery_key``.

    Raises:
        TimkitError: 400 for a malformed recovery key (naming the defect); 403 for a
            recovery key that does not open the account's secret storage, or when the
            homeserver publishes cross-signing or backup keys other than the stored ones;
            404 when the account has no secret storage or no backup.
    """
    key = decode_recovery_key(recovery_key)
    storage = await secret_storage.open_default(api, user_id, key)
    keys = await cross_signing.load(storage)
    secret = await storage.load(backup.SECRET_NAME)
    private_key = b64decode(secret, f"secret {backup.SECRET_NAME}")
    if len(private_key) != 32:
        raise TimkitError(400, Codes.BAD_JSON, f"secret {backup.SECRET_NAME} is not a 32-byte key")
    current = await backup.current_version(api)
    if current is None:
        raise TimkitError(404, Codes.NOT_FOUND, "this account has no key backup")
    if current.algorithm != backup.ALGORITHM or current.public_key != backup.public_key_of(
        private_key
    ):
        raise TimkitError(
            403,
            Codes.FORBIDDEN,
            f"backup {current.version} does not belong to the stored backup key",
        )
    await cross_signing.sign_device(api, olm, user_id, device_id, keys.master, keys.self_signing)
    restored = await backup.restore(api, olm, current.version, private_key)
    return RestoreResult(current.version, restored.total, restored.imported, restored.failed)


async def upload_new_sessions(api: MatrixApi, olm: OlmDevice) -> int:
    """Back up the sessions of ``olm`` the current backup lacks; how many were uploaded.

    Raises:
        TimkitError: 404 when the account has no backup; 403 when this device does not
            trust it (its master key unsigned by this device, or the backup unsigned by it).
    """
    current = await backup.trusted_version(api, olm)
    assert current.public_key is not None  # checked by trusted_version
    return await backup.upload(api, olm, current.version, current.public_key)


async def backup_status(api: MatrixApi) -> BackupStatus:
    """The account's current key backup (``enabled=False`` when there is none)."""
    current = await backup.current_version(api)
    if current is None:
        return BackupStatus(enabled=False)
    return BackupStatus(True, current.version, current.algorithm, current.count, current.etag)
