"""The Matrix recovery key: a 32-byte secret storage key as a human-typable string.

Format (spec "Key representation" of secret storage): the bytes ``0x8B 0x01``, the 32-byte
key and a parity byte (XOR of all preceding bytes) are base58-encoded with the Bitcoin
alphabet and split into groups of four characters by spaces. Whitespace is insignificant
when decoding.
"""

from __future__ import annotations

from functools import reduce

from timkit.core.errors import Codes, TimkitError

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PREFIX = b"\x8b\x01"
KEY_LENGTH = 32


def _parity(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def base58_encode(data: bytes) -> str:
    """``data`` in base58 (Bitcoin alphabet; each leading zero byte becomes ``1``)."""
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, rest = divmod(number, 58)
        digits = ALPHABET[rest] + digits
    zeros = len(data) - len(data.lstrip(b"\0"))
    return ALPHABET[0] * zeros + digits


def base58_decode(text: str) -> bytes:
    """The bytes of base58 ``text``.

    Raises:
        ValueError: ``text`` has a character outside the alphabet (named in the message).
    """
    number = 0
    for char in text:
        index = ALPHABET.find(char)
        if index < 0:
            raise ValueError(f"{char!r} is not a base58 character")
        number = number * 58 + index
    zeros = len(text) - len(text.lstrip(ALPHABET[0]))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def encode_recovery_key(key: bytes) -> str:
    """The recovery key string of a 32-byte secret storage key.

    Raises:
        ValueError: ``key`` is not 32 bytes long.
    """
    if len(key) != KEY_LENGTH:
        raise ValueError(f"a recovery key holds {KEY_LENGTH} bytes, not {len(key)}")
    raw = PREFIX + key
    encoded = base58_encode(raw + bytes([_parity(raw)]))
    return " ".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def decode_recovery_key(text: str) -> bytes:
    """The 32-byte secret storage key in recovery key ``text``.

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` naming what is wrong: a character outside the
            base58 alphabet, the wrong length, the wrong prefix or a parity mismatch (a typo).
    """
    compact = "".join(text.split())
    try:
        raw = base58_decode(compact)
    except ValueError as e:
        raise TimkitError(400, Codes.INVALID_PARAM, f"the recovery key is not base58: {e}") from e
    if len(raw) != len(PREFIX) + KEY_LENGTH + 1:
        raise TimkitError(
            400,
            Codes.INVALID_PARAM,
            f"the recovery key decodes to {len(raw)} bytes, not {len(PREFIX) + KEY_LENGTH + 1}",
        )
    if not raw.startswith(PREFIX):
        raise TimkitError(400, Codes.INVALID_PARAM, "the recovery key has the wrong prefix")
    if _parity(raw) != 0:
        raise TimkitError(
            400, Codes.INVALID_PARAM, "the recovery key's parity byte does not match (a typo?)"
        )
    return raw[len(PREFIX) : -1]
