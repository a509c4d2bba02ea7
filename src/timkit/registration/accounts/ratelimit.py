"""Rate limits per client IP address: in-memory token buckets on top of the account lockout.

The per-account lockout (:mod:`.handlers`) stops guessing one account's password; these
limits stop one client from trying many accounts, or from having the RD mail many KIM
addresses. Each limit is a token bucket per client IP (``request.remote``; behind a reverse
proxy that is the proxy's address unless the proxy's ``Forwarded`` header is applied before
the RD), :class:`timkit.core.ratelimit.TokenBuckets` of a
:class:`~timkit.core.ratelimit.RateLimit`: ``burst`` tokens, refilled at ``per_minute``; each
request takes one token, a request finding none is refused with :class:`RateLimited` (429
``M_LIMIT_EXCEEDED`` with ``retry_after_ms``, the time until a token is back).

==========  ===============================================  =============================
limit       requests                                         configured by
==========  ===============================================  =============================
``login``   ``POST /login``, ``POST /api/v1/login``,         ``accounts.login_rate_limit``
            ``POST /api/v1/login/webauthn/begin``
``kim``     ``POST /kim/start``,                             ``kim.rate_limit``
            ``POST /api/v1/organisations/kim``
==========  ===============================================  =============================

The buckets live in the RD process (several RD processes limit each on its own) and are held
for at most :data:`timkit.core.ratelimit.MAX_CLIENTS` clients per limit (see there).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from timkit.core.errors import Codes, TimkitError
from timkit.core.ratelimit import Clock, TokenBuckets
from timkit.registration.config import RegistrationConfig
from timkit.registration.context import CONTEXT_KEY

REQUIREMENT = "ML-129853"
Limit = Literal["login", "kim"]


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
