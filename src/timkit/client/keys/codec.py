"""Base64 and canonical JSON as the Matrix key formats use them.

Matrix encodes keys, signatures and ciphertexts as *unpadded* base64 (spec "Unpadded
Base64"); decoders must also accept padded input. Signatures cover the canonical JSON of an
object without its ``signatures`` and ``unsigned`` members (spec "Signing JSON").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from canonicaljson import encode_canonical_json

from timkit.core.errors import Codes, TimkitError


def b64encode(data: bytes) -> str:
    """``data`` as unpadded standard base64."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(value: object, what: str) -> bytes:
    """Decode standard base64 with or without padding.

    Raises:
        TimkitError: 400 ``M_BAD_JSON`` naming ``what`` when ``value`` is not a base64 string.
    """
    if not isinstance(value, str):
        raise TimkitError(400, Codes.BAD_JSON, f"{what} is not a base64 string")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise TimkitError(400, Codes.BAD_JSON, f"{what} is not valid base64") from e


def signable(obj: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes a signature on ``obj`` covers (without signatures/unsigned)."""
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return encode_canonical_json(stripped)
