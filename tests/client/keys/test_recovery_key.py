"""The recovery key format, checked against matrix-rust-sdk's published test vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timkit.client.keys.recovery_key import (
    PREFIX,
    base58_decode,
    base58_encode,
    decode_recovery_key,
    encode_recovery_key,
)
from timkit.core.errors import TimkitError

# matrix-rust-sdk, crates/matrix-sdk-crypto/src/backups/keys/decryption.rs (tests)
RUST_KEY = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RUST_TEXT = "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d"
# matrix-rust-sdk, crates/matrix-sdk-crypto/src/secret_storage.rs (base58_parsing)
RUST_SPACED = "EsT           pRvZTnjck8    YrhRAtw XLS84Nr2r9S9LGAWDaExVAPBvLRK   "
RUST_SPACED_KEY = bytes.fromhex("9fbd46bb345171c6f6022c9a25d5681ba54eec6a6c4953f3adc0b96e9d91ada3")


def test_a_published_recovery_key_decodes_to_its_bytes_with_or_without_spaces() -> None:
    assert decode_recovery_key(RUST_TEXT) == RUST_KEY
    assert decode_recovery_key(RUST_TEXT.replace(" ", "")) == RUST_KEY
    assert decode_recovery_key(f"\n {RUST_TEXT.replace(' ', chr(9))} \n") == RUST_KEY
    assert decode_recovery_key(RUST_SPACED) == RUST_SPACED_KEY


def test_encoding_gives_the_published_string_in_groups_of_four() -> None:
    assert encode_recovery_key(RUST_KEY) == RUST_TEXT
    groups = encode_recovery_key(bytes(range(32))).split(" ")
    assert all(len(g) == 4 for g in groups[:-1])
    assert 1 <= len(groups[-1]) <= 4


@given(st.binary(min_size=32, max_size=32))
def test_every_key_survives_the_round_trip(key: bytes) -> None:
    assert decode_recovery_key(encode_recovery_key(key)) == key


@given(st.binary(max_size=40))
def test_base58_round_trips_and_keeps_leading_zero_bytes(data: bytes) -> None:
    assert base58_decode(base58_encode(data)) == data


def _refused(text: str) -> TimkitError:
    with pytest.raises(TimkitError) as raised:
        decode_recovery_key(text)
    assert raised.value.status == 400
    return raised.value


def test_a_typo_is_refused_by_the_parity_byte() -> None:
    assert "parity" in _refused(RUST_TEXT[:-1] + "e").message
    assert "parity" in _refused("EsTpRvZTnjck8YrhRAtwXLS84Nr2r9S9LGAWDaExVAPBvLRk").message


def test_a_wrong_prefix_is_refused() -> None:
    assert "prefix" in _refused("AATpRvZTnjck8YrhRAtwXLS84Nr2r9S9LGAWDaExVAPBvLRk").message
    other = b"\x8b\x02" + RUST_KEY
    parity = 0
    for byte in other:
        parity ^= byte
    assert "prefix" in _refused(base58_encode(other + bytes([parity]))).message


def test_a_wrong_length_is_refused() -> None:
    assert "bytes" in _refused("AATpRvZTnjck8YrhRAtwXLS84Nr2r9S9").message
    assert "bytes" in _refused("").message
    assert "bytes" in _refused(RUST_TEXT + " 1111").message


@pytest.mark.parametrize("char", ["0", "O", "I", "l", "+", "/", "ä"])
def test_characters_outside_the_base58_alphabet_are_named(char: str) -> None:
    error = _refused(RUST_TEXT[:5] + char + RUST_TEXT[6:])
    assert repr(char) in error.message


def test_only_32_byte_keys_are_encoded() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encode_recovery_key(bytes(31))
    assert PREFIX == b"\x8b\x01"
