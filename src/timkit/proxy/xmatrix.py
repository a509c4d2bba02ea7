"""The ``Authorization: X-Matrix`` header of server-server requests (Matrix S-S API,
"Request Authentication"): ``X-Matrix origin=…,destination=…,key="…",sig="…"``.

The proxy only reads ``origin`` (inbound, ML-123666) and ``destination`` (outbound,
ML-123665); the homeserver verifies the signature.
"""

from __future__ import annotations

import re

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^",\s]*))\s*(?:,|\Z)')
_ESCAPE = re.compile(r"\\(.)")


def parse_x_matrix(value: str) -> dict[str, str] | None:
    """The parameters of an ``X-Matrix k=v,k="v",…`` header value.

    Returns:
        Parameter name (lower-case) → value (quotes and backslash escapes removed), or None
        when ``value`` uses another scheme.

    Raises:
        ValueError: when the parameter list is malformed or names a parameter twice.
    """
    scheme, _, params = value.strip().partition(" ")
    if scheme.lower() != "x-matrix":
        return None
    result: dict[str, str] = {}
    params = params.strip()
    pos = 0
    while pos < len(params):
        match = _PARAM.match(params, pos)
        if match is None or match.end() == pos:
            raise ValueError("malformed X-Matrix Authorization header")
        name, quoted, plain = match.groups()
        name = name.lower()
        if name in result:
            raise ValueError(f"X-Matrix parameter {name!r} given twice")
        result[name] = _ESCAPE.sub(r"\1", quoted) if quoted is not None else plain
        pos = match.end()
    return result
