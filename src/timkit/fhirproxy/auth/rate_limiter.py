"""Token bucket per client for the FHIR-Proxy's authentication endpoints.

Each client (a key such as ``client:<client_id>`` or ``ip:<address>``) owns a bucket of
``burst`` tokens refilled at ``per_minute / 60`` tokens per second; a request takes one token
(:class:`timkit.core.ratelimit.TokenBuckets`). An empty bucket yields a 429 OAuth
``slow_down`` error carrying the whole seconds until a token is available (rendered as
``Retry-After`` by the HTTP edge).

State is per process (several proxy instances each limit on their own). The number of
tracked clients is bounded by :data:`MAX_CLIENTS` (see :mod:`timkit.core.ratelimit`), which
at worst gives a forgotten client a fresh burst.
"""

from __future__ import annotations

import math
import time

from timkit.core.errors import TimkitError
from timkit.core.ratelimit import Clock, RateLimit, TokenBuckets

MAX_CLIENTS = 100_000


class RateLimiter:
    """Token buckets keyed by client.

    Args:
        limits: sustained rate and burst size.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, limits: RateLimit, clock: Clock = time.monotonic) -> None:
        self._buckets = TokenBuckets(limits, clock, max_clients=MAX_CLIENTS)

    def take(self, client: str) -> float:
        """Take one token for ``client``; return 0, or the seconds to wait when empty."""
        return self._buckets.take(client)

    def check(self, client: str, requirement: str | None = None) -> None:
        """Take one token for ``client``.

        Raises:
            TimkitError: 429 ``slow_down`` with ``extra["retry_after"]`` (whole seconds, ≥ 1)
                when the client's bucket is empty.
        """
        wait = self.take(client)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise TimkitError(
                429,
                "slow_down",
                f"too many authentication requests; retry in {retry} s",
                requirement=requirement,
                extra={"retry_after": retry},
            )
