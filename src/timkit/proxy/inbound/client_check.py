"""AF_10057: only TI-M clients the provider supports may log in (optional, off by default).

gematik's login sequence (``UC_10057_Seq.puml``) lets the Messenger-Proxy check the client
before the homeserver sees the login: a client the provider does not support (no valid
``client_secret``) gets 401. The specification does not say how a client presents its
credentials; timkit reads two request headers, :data:`CLIENT_ID_HEADER` and
:data:`CLIENT_SECRET_HEADER`, each given once, and compares the secret's SHA-256 with the
registered one in constant time (``[[inbound.supported_clients]]``; none registered = every
client may log in).

The check covers every path that hands out an access token without one: ``login`` and
``register`` and everything below them (``login/sso/redirect``, ``login/get_token``,
``register/available`` …) under every client API version prefix, known or not (``r0``,
``v3``, ``api/v1``, ``unstable/<feature>``, a future ``v4``), matched on decoded segments.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from multidict import MultiMapping

from timkit.core.errors import Codes, TimkitError
from timkit.core.request_target import UnparsableRequest, single_header

CLIENT_ID_HEADER = "X-TIM-Client-ID"
"""The request header naming the TI-M client (its ``client_id`` at the provider)."""
CLIENT_SECRET_HEADER = "X-TIM-Client-Secret"  # noqa: S105 - a header name
"""The request header carrying the client's ``client_secret``."""
SUPPORTED_CLIENT_RULE = "AF_10057 (client supported by the provider: client_id/client_secret)"
"""The rule a refused login breaks."""
LOGIN_PATHS = frozenset({"login", "register"})
"""The client API paths that issue access tokens."""


def is_login_path(segments: tuple[str, ...]) -> bool:
    """Whether the decoded ``segments`` are ``/_matrix/client/<version>/login|register…``
    (a one-segment version, or ``api/v1`` and ``unstable/<feature>``)."""
    if len(segments) < 4 or segments[0] != "_matrix" or segments[1] != "client":
        return False
    if segments[3] in LOGIN_PATHS:
        return True
    return len(segments) > 4 and segments[2] in ("api", "unstable") and segments[4] in LOGIN_PATHS


class ClientCheck:
    """The registered clients: ``client_id`` → SHA-256 of its secret (lowercase hex)."""

    def __init__(self, clients: Iterable[tuple[str, str]]) -> None:
        self._secrets = {client_id: bytes.fromhex(digest) for client_id, digest in clients}

    @property
    def active(self) -> bool:
        """Whether any client is registered (else every client may log in)."""
        return bool(self._secrets)

    def check(self, headers: MultiMapping[str]) -> None:
        """Pass a request from a supported client; refuse any other.

        Raises:
            TimkitError: 401 ``M_UNAUTHORIZED`` (citing :data:`SUPPORTED_CLIENT_RULE`) when a
                header is missing or given twice, the client is unknown or its secret wrong.
        """
        try:
            client_id = single_header(headers, CLIENT_ID_HEADER)
            secret = single_header(headers, CLIENT_SECRET_HEADER)
        except UnparsableRequest as e:
            raise _refused(str(e)) from None
        if client_id is None or secret is None:
            raise _refused(
                f"this Messenger-Service admits only the TI-M clients its provider supports: "
                f"send {CLIENT_ID_HEADER} and {CLIENT_SECRET_HEADER}"
            )
        expected = self._secrets.get(client_id)
        presented = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()
        if expected is None or not hmac.compare_digest(presented, expected):
            raise _refused("the TI-M client is not supported by this provider")


def _refused(message: str) -> TimkitError:
    return TimkitError(401, Codes.UNAUTHORIZED, message, requirement=SUPPORTED_CLIENT_RULE)
