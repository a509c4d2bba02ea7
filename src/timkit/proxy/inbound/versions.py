"""``GET /_matrix/client/versions``: the Matrix versions a client is told about, capped.

A TI-M 1.1.x Messenger-Service speaks Matrix v1.3 (gematik's approval suite, scenario
00.05: no version above 1.3 is advertised; gematik's reference proxy for 1.1.x did the
same). Synapse lists every version it implements, so the proxy removes those above
``inbound.max_matrix_version`` from the answer; ``unstable_features`` and every other field
stay as Synapse sent them. Versions of the pre-v1 scheme (``r0.x.y``) are older than any
``vX.Y`` and stay; an entry of neither form is dropped (it cannot be compared).
"""

from __future__ import annotations

import re

import orjson

from timkit.core.errors import Codes, TimkitError

VERSIONS_RULE = "TIM_11 testsuite 00.05 (Matrix v1.3 for TI-M 1.1.x)"
"""Why the list is capped."""
_VERSION = re.compile(r"v(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})")
_LEGACY = re.compile(r"r0\.[0-9]{1,3}\.[0-9]{1,3}")
VERSIONS_PATH = ("_matrix", "client", "versions")
"""The decoded segments of the endpoint (Synapse serves no other spelling)."""


def parse_version(value: str) -> tuple[int, int] | None:
    """``"v1.3"`` as ``(1, 3)``; None for anything that is not ``v<major>.<minor>``."""
    match = _VERSION.fullmatch(value)
    return (int(match[1]), int(match[2])) if match else None


def capped(body: bytes, cap: tuple[int, int]) -> bytes:
    """Synapse's ``/versions`` answer with every version above ``cap`` removed.

    Raises:
        TimkitError: 502 ``M_UNKNOWN`` when the answer is not a JSON object with a
            ``versions`` list of strings (the proxy cannot vouch for what it cannot read).
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    versions = document.get("versions") if isinstance(document, dict) else None
    if not isinstance(document, dict) or not isinstance(versions, list):
        raise TimkitError(
            502,
            Codes.UNKNOWN,
            "homeserver /versions answer is unreadable",
            requirement=VERSIONS_RULE,
        )
    kept = []
    for entry in versions:
        if not isinstance(entry, str):
            continue
        parsed = parse_version(entry)
        if (parsed is not None and parsed <= cap) or (parsed is None and _LEGACY.fullmatch(entry)):
            kept.append(entry)
    return orjson.dumps({**document, "versions": kept})
