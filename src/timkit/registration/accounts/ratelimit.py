"""Rate limits per client IP address: in-memory token buckets on top of the account lockout.

The per-account lockout (:mod:`.handlers`) stops guessing one account's password; these
limits stop one client from trying many accounts, or from having the RD mail many KIM
addresses. Each limit is a token bucket per client IP (``request.remote``; behind a reverse
proxy that is the proxy's address unless the proxy's ``Forwarded`` header is applied before
the RD): ``burst`` tokens, refilled at ``per_minute``; each request takes one token, a request
finding none is refused with :class:`RateLimited` (429 ``M_LIMIT_EXCEEDED`` with
``retry_after_ms``, the time until a token is back).

==========  ===============================================  =============================
limit       requests                                         configured by
==========  ===============================================  =============================
``login``   ``POST /login``, ``POST /api/v1/login``,         ``accounts.login_rate_limit``
            ``POST /api/v1/login/webauthn/begin``
``kim``     ``POST /kim/start``,                             ``kim.rate_limit``
            ``POST /api/v1/organisations/kim``
==========  ===============================================  =============================

The buckets live in the RD process (several RD processes limit each on its own) and are held
for at most :data:`MAX_CLIENTS` clients per limit: beyond that, full buckets (idle clients)
are forgotten first, then the least recently seen. Handlers run on the event loop, so no lock
is needed.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.registration.config import RateLimit, RegistrationConfig
from timkit.registration.context import CONTEXT_KEY

REQUIREMENT = "ML-129853"
MAX_CLIENTS = 10000
Limit = Literal["login", "kim"]
Clock = Callable[[], float]


class RateLimited(TimkitError):
    """A client exceeded a rate limit: 429 ``M_LIMIT_EXCEEDED`` with ``retry_after_ms``.

    Attributes:
        limit: which limit (``login`` or ``kim``).
        retry_after: seconds until the client may try again.
    """

    def __init__(self, limit: Limit, retry_after: float) -> None:
        self.limit = limit
        self.retry_after = retry_after
        what = "login attempts" if limit == "login" else "KIM confirmation mails"
        seconds = max(math.ceil(retry_after), 1)
        super().__init__(
            429,
            Codes.LIMIT_EXCEEDED,
            f"too many {what} from this address; try again in {seconds} s",
            requirement=REQUIREMENT if limit == "login" else None,
            extra={"retry_after_ms": max(math.ceil(retry_after * 1000), 1)},
        )


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """One token bucket per key (client IP) of one limit.

    Args:
        settings: bucket size and refill rate.
        clock: monotonic seconds (injectable for tests).
        max_clients: keys kept at most (see the module docstring).
    """

    def __init__(
        self, settings: RateLimit, clock: Clock = time.monotonic, max_clients: int = MAX_CLIENTS
    ) -> None:
        self.burst = float(settings.burst)
        self.rate = settings.per_minute / 60.0
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when granted, else the seconds until one is back."""
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        level = self.burst if bucket is None else self._level(bucket, now)
        granted = level >= 1.0
        if granted:
            level -= 1.0
        self._buckets[key] = _Bucket(level, now)  # most recently seen last
        self._prune(now)
        return 0.0 if granted else (1.0 - level) / self.rate

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= self.max_clients:
            return
        for key in [k for k, b in self._buckets.items() if self._level(b, now) >= self.burst]:
            del self._buckets[key]
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True)
class RateLimits:
    """The RD's rate limits (one :class:`TokenBuckets` per limit)."""

    login: TokenBuckets
    kim: TokenBuckets

    @classmethod
    def from_config(cls, config: RegistrationConfig, clock: Clock = time.monotonic) -> RateLimits:
        """The limits ``config`` asks for."""
        return cls(
            TokenBuckets(config.accounts.login_rate_limit, clock),
            TokenBuckets(config.kim.rate_limit, clock),
        )


LIMITS_KEY = web.AppKey("registration.rate_limits", RateLimits)


def setup(app: web.Application) -> None:
    """Give ``app`` (its context set already) fresh rate limits from its configuration."""
    app[LIMITS_KEY] = RateLimits.from_config(app[CONTEXT_KEY].config)


def check(request: web.Request, limit: Limit) -> None:
    """Take a token of ``limit`` for the client of ``request``.

    Raises:
        RateLimited: when the client's bucket is empty.
    """
    buckets: TokenBuckets = getattr(request.app[LIMITS_KEY], limit)
    wait = buckets.take(request.remote or "unknown")
    if wait > 0:
        raise RateLimited(limit, wait)
