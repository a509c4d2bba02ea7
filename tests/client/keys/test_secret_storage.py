"""SSSS ``m.secret_storage.v1.aes-hmac-sha2``: the key check, HKDF, AES-CTR and HMAC."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from timkit.client.keys.codec import b64decode, b64encode
from timkit.client.keys.recovery_key import decode_recovery_key
from timkit.client.keys.secret_storage import (
    ALGORITHM,
    check_key,
    decrypt,
    derive_keys,
    encrypt,
    key_description,
    new_iv,
)
from timkit.core.errors import TimkitError

# matrix-rust-sdk, crates/matrix-sdk-crypto/src/secret_storage.rs (from_account_data_and_base58):
# a key description written by another implementation, with padded base64.
RUST_RECOVERY_KEY = "EsTj 3yST y93F SLpB jJsz eAXc 2XzA ygD3 w69H fGaN TKBj jXEd"
RUST_DESCRIPTION = {
    "algorithm": ALGORITHM,
    "iv": "xv5b6/p3ExEw++wTyfSHEg==",
    "mac": "ujBBbXahnTAMkmPUX2/0+VTfUh63pGyVRuBcDMgmJC8=",
}
KEY = bytes(range(32))


def _hkdf_sha256(key: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 by hand, independent of ``cryptography``."""
    prk = hmac.new(salt, key, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def test_the_published_key_description_accepts_its_recovery_key() -> None:
    check_key(
        decode_recovery_key(RUST_RECOVERY_KEY), RUST_DESCRIPTION, "bmur2d9ypPUH1msSwCxQOJkuKRmJI55e"
    )


def test_another_key_is_refused_by_the_zero_string_check() -> None:
    with pytest.raises(TimkitError) as raised:
        check_key(KEY, RUST_DESCRIPTION, "bmur2d9ypPUH1msSwCxQOJkuKRmJI55e")
    assert raised.value.status == 403
    assert (
        "does not open secret storage key bmur2d9ypPUH1msSwCxQOJkuKRmJI55e" in raised.value.message
    )


def test_the_key_check_is_the_mac_of_32_zero_bytes_under_the_empty_name() -> None:
    iv = bytes(16)
    description = key_description(KEY, iv)
    aes_key, mac_key = derive_keys(KEY, "")
    encryptor = Cipher(algorithms.AES(aes_key), modes.CTR(iv)).encryptor()
    ciphertext = encryptor.update(bytes(32)) + encryptor.finalize()
    assert description == {
        "algorithm": ALGORITHM,
        "iv": b64encode(iv),
        "mac": b64encode(hmac.new(mac_key, ciphertext, hashlib.sha256).digest()),
    }
    check_key(KEY, description, "k")


def test_hkdf_uses_a_zero_salt_and_the_secret_name_as_info() -> None:
    expected = _hkdf_sha256(KEY, bytes(32), b"m.cross_signing.master", 64)
    assert derive_keys(KEY, "m.cross_signing.master") == (expected[:32], expected[32:])
    assert derive_keys(KEY, "m.megolm_backup.v1") != derive_keys(KEY, "m.cross_signing.master")


def test_a_secret_round_trips_and_its_mac_covers_the_ciphertext() -> None:
    encrypted = encrypt(KEY, "m.cross_signing.master", b"geheim")
    assert decrypt(KEY, "m.cross_signing.master", encrypted.to_json()) == b"geheim"
    _, mac_key = derive_keys(KEY, "m.cross_signing.master")
    ciphertext = b64decode(encrypted.ciphertext, "ciphertext")
    assert b64decode(encrypted.mac, "mac") == hmac.new(mac_key, ciphertext, hashlib.sha256).digest()


def _refused(name: str, data: object, key: bytes = KEY) -> TimkitError:
    with pytest.raises(TimkitError) as raised:
        decrypt(key, name, data)
    return raised.value


def test_a_tampered_ciphertext_iv_or_mac_is_refused() -> None:
    good = encrypt(KEY, "m.cross_signing.master", b"geheim").to_json()
    flipped = bytearray(b64decode(good["ciphertext"], "c"))
    flipped[0] ^= 1
    assert (
        _refused("m.cross_signing.master", {**good, "ciphertext": b64encode(bytes(flipped))}).status
        == 403
    )
    assert _refused("m.cross_signing.master", {**good, "mac": b64encode(bytes(32))}).status == 403
    assert _refused("m.cross_signing.master", {**good, "iv": b64encode(bytes(15))}).status == 400
    assert _refused("m.cross_signing.master", {**good, "mac": "nicht base64!"}).status == 400
    assert _refused("m.cross_signing.master", "not an object").status == 400


def test_a_secret_does_not_open_under_another_name_or_key() -> None:
    good = encrypt(KEY, "m.cross_signing.master", b"geheim").to_json()
    assert _refused("m.cross_signing.self_signing", good).status == 403
    assert _refused("m.cross_signing.master", good, key=bytes(32)).status == 403


def test_fresh_ivs_are_random_with_bit_63_cleared() -> None:
    ivs = [new_iv() for _ in range(64)]
    assert len(set(ivs)) == 64
    assert all(len(iv) == 16 and iv[8] & 0x80 == 0 for iv in ivs)


def test_unpadded_and_padded_base64_are_both_read() -> None:
    encrypted = encrypt(KEY, "s", b"x").to_json()
    assert "=" not in "".join(encrypted.values())
    padded = {k: v + "=" * (-len(v) % 4) for k, v in encrypted.items()}
    assert decrypt(KEY, "s", padded) == b"x"


@pytest.mark.parametrize(
    "description",
    [
        {**RUST_DESCRIPTION, "algorithm": "m.secret_storage.custom"},
        {**RUST_DESCRIPTION, "iv": b64encode(bytes(14))},
        {"algorithm": ALGORITHM},
        "m.secret_storage.v1.aes-hmac-sha2",
    ],
)
def test_malformed_key_descriptions_are_refused_as_bad_json(description: object) -> None:
    with pytest.raises(TimkitError) as raised:
        check_key(decode_recovery_key(RUST_RECOVERY_KEY), description, "k")
    assert raised.value.status == 400
