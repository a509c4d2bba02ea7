"""In-memory state of the code flow: pending card selections and authorization codes.

Both live in this process's memory only, bounded and pruned as they expire. An instance
redeems only the codes it issued, so several instances behind a load balancer need sticky
routing (session affinity) from ``GET /auth`` to ``POST /token`` - acceptable for a stand-in
of the central IDP-Dienst. The stores are used from the event loop only (no locking).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from timkit.core.errors import TimkitError

MAX_ENTRIES = 10_000
REMEMBER = 600.0

T = TypeVar("T")


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request, waiting for the card selection.

    Attributes:
        client_id: the registered client.
        redirect_uri: one of its registered redirect URIs (exact match).
        scope: the requested scopes (``openid`` among them).
        state: the client's ``state``, returned unchanged.
        nonce: the client's ``nonce`` for the ID token, if it sent one.
        code_challenge: the PKCE ``S256`` challenge.
    """

    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    state: str
    nonce: str | None
    code_challenge: str


@dataclass(frozen=True)
class Grant:
    """What an authorization code stands for.

    Attributes:
        request: the authorization request it answers.
        card_id: the card the user chose.
        auth_time: when the user authenticated (epoch seconds).
        expires: when the code expires (epoch seconds).
    """

    request: AuthorizationRequest
    card_id: str
    auth_time: int
    expires: float


class _Expiring(Generic[T]):
    """Keys → values with an expiry, oldest first, at most :data:`MAX_ENTRIES`.

    Entries are kept ``grace`` seconds past their expiry, so a late lookup can tell
    "expired" from "unknown".
    """

    def __init__(self, clock: Callable[[], float], grace: float = 0.0) -> None:
        self._clock = clock
        self._grace = grace
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def put(self, key: str, value: T, expires: float) -> None:
        self._prune()
        self._entries[key] = (expires, value)
        if len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def add(self, value: T, expires: float) -> str:
        key = secrets.token_urlsafe(32)
        self.put(key, value, expires)
        return key

    def get(self, key: str) -> tuple[float, T] | None:
        self._prune()
        return self._entries.get(key)

    def pop(self, key: str) -> tuple[float, T] | None:
        self._prune()
        return self._entries.pop(key, None)

    def _prune(self) -> None:
        limit = self._clock() - self._grace
        while self._entries and next(iter(self._entries.values()))[0] < limit:
            self._entries.popitem(last=False)


class PendingRequests:
    """Authorization requests between the card-selection page and its form post.

    Args:
        lifetime: seconds a request id stays valid.
        clock: epoch seconds.
    """

    def __init__(self, lifetime: float, clock: Callable[[], float]) -> None:
        self._lifetime = lifetime
        self._clock = clock
        self._requests: _Expiring[AuthorizationRequest] = _Expiring(clock)

    def add(self, request: AuthorizationRequest) -> str:
        """Remember ``request``; returns its opaque, unguessable request id."""
        return self._requests.add(request, self._clock() + self._lifetime)

    def take(self, request_id: str) -> AuthorizationRequest | None:
        """The request ``request_id`` stands for, removed (single use); None if unknown."""
        entry = self._requests.pop(request_id)
        return entry[1] if entry is not None else None


class AuthorizationCodes:
    """Single-use authorization codes.

    Codes are remembered :data:`REMEMBER` seconds past their expiry, and redeemed codes until
    then too, so a late or second use is refused as such rather than as unknown.

    Args:
        lifetime: seconds a code may be redeemed.
        clock: epoch seconds.
    """

    def __init__(self, lifetime: float, clock: Callable[[], float]) -> None:
        self._lifetime = lifetime
        self._clock = clock
        self._codes: _Expiring[Grant] = _Expiring(clock, REMEMBER)
        self._redeemed: _Expiring[None] = _Expiring(clock, REMEMBER)

    def issue(self, request: AuthorizationRequest, card_id: str) -> str:
        """A new code for ``request`` answered with ``card_id``."""
        now = self._clock()
        grant = Grant(request, card_id, int(now), now + self._lifetime)
        return self._codes.add(grant, grant.expires)

    def redeem(self, code: str) -> Grant:
        """The grant of ``code``, which this call uses up (whatever checks follow).

        Raises:
            TimkitError: 400 ``invalid_grant`` for an unknown, expired or already used code.
        """
        entry = self._codes.pop(code)
        if entry is None:
            if self._redeemed.get(code) is not None:
                raise TimkitError(400, "invalid_grant", "the authorization code was already used")
            raise TimkitError(400, "invalid_grant", "the authorization code is unknown")
        expires, grant = entry
        self._redeemed.put(code, None, expires)
        if expires < self._clock():
            raise TimkitError(400, "invalid_grant", "the authorization code has expired")
        return grant
