"""Cross-signing keys and their canonical JSON signatures, verified by signedjson (PyNaCl)."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.signing import SigningKey as NaclSigningKey
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json

from timkit.client.keys.codec import b64decode, signable
from timkit.client.keys.cross_signing import (
    CrossSigningKeys,
    SigningKey,
    key_object,
    single_key,
    upload_body,
    verify,
    with_signature,
)
from timkit.core.errors import TimkitError

USER = "@arzt:praxis-sonnenschein.tim.test"


def _verify_with_signedjson(obj: dict[str, Any], key: SigningKey) -> None:
    verify_key = decode_verify_key_bytes(key.key_id, b64decode(key.public, "key"))
    verify_signed_json(obj, USER, verify_key)


def test_a_seed_gives_the_same_public_key_as_pynacl() -> None:
    key = SigningKey(bytes(range(32)))
    nacl = NaclSigningKey(bytes(range(32)))
    assert b64decode(key.public, "key") == bytes(nacl.verify_key)
    message = signable({"b": 1, "a": [2, "ü"]})
    assert b64decode(key.sign({"b": 1, "a": [2, "ü"]}), "sig") == nacl.sign(message).signature


def test_the_upload_body_signs_self_and_user_signing_keys_with_the_master_key() -> None:
    keys = CrossSigningKeys.generate()
    body = upload_body(USER, keys)
    assert body["master_key"] == {
        "user_id": USER,
        "usage": ["master"],
        "keys": {keys.master.key_id: keys.master.public},
    }
    for usage, key in (("self_signing", keys.self_signing), ("user_signing", keys.user_signing)):
        obj = body[f"{usage}_key"]
        assert obj["usage"] == [usage]
        assert single_key(obj) == key.public
        _verify_with_signedjson(obj, keys.master)
        assert verify(obj, USER, keys.master.key_id, keys.master.public)
    assert len({keys.master.public, keys.self_signing.public, keys.user_signing.public}) == 3


def test_signatures_cover_canonical_json_without_signatures_and_unsigned() -> None:
    key = SigningKey.generate()
    obj = {"z": "ä", "a": {"y": 1, "b": [True, None]}, "unsigned": {"x": 1}}
    signed = with_signature(obj, USER, key.key_id, key.sign(obj))
    assert "unsigned" not in signed
    _verify_with_signedjson(signed, key)
    reordered = {"a": {"b": [True, None], "y": 1}, "z": "ä", "signatures": signed["signatures"]}
    assert verify(reordered, USER, key.key_id, key.public)


def test_a_tampered_object_or_another_key_fails_verification() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    obj = key_object(USER, "self_signing", other)
    signed = with_signature(obj, USER, key.key_id, key.sign(obj))
    tampered = {**signed, "usage": ["master"]}
    assert not verify(tampered, USER, key.key_id, key.public)
    with pytest.raises(SignatureVerifyException):
        _verify_with_signedjson(tampered, key)
    assert not verify(signed, USER, key.key_id, other.public)
    assert not verify(signed, "@andere:klinikum-nord.tim.test", key.key_id, key.public)
    assert not verify(
        {**signed, "signatures": {USER: {key.key_id: "kaputt"}}}, USER, key.key_id, key.public
    )


def test_a_secret_must_hold_a_32_byte_seed() -> None:
    key = SigningKey.generate()
    assert SigningKey.from_secret(key.secret(), "m.cross_signing.master") == key
    with pytest.raises(TimkitError) as raised:
        SigningKey.from_secret("AAAA", "m.cross_signing.master")
    assert raised.value.status == 400
    assert "m.cross_signing.master" in raised.value.message


def test_single_key_refuses_objects_with_several_or_no_keys() -> None:
    key = SigningKey.generate()
    assert single_key(key_object(USER, "master", key)) == key.public
    assert single_key({"keys": {}}) is None
    assert single_key({"keys": {"ed25519:a": "a", "ed25519:b": "b"}}) is None
    assert single_key(None) is None
