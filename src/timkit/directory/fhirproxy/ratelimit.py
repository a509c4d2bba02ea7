"""Token bucket per client for the FHIR-Proxy's authentication endpoints.

Each client (a key such as ``client:<client_id>`` or ``ip:<address>``) owns a bucket of
``burst`` tokens refilled at ``per_minute / 60`` tokens per second; a request takes one token.
An empty bucket yields a 429 OAuth ``slow_down`` error carrying the whole seconds until a
token is available (rendered as ``Retry-After`` by the HTTP edge).

State is per process (several proxy instances each limit on their own). The number of
tracked clients is bounded: past :data:`MAX_CLIENTS` the least recently seen bucket is
dropped, which at worst gives that client a fresh burst.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from timkit.core.errors import TimkitError
from timkit.directory.fhirproxy.config import RateLimit

MAX_CLIENTS = 100_000


class RateLimiter:
    """Token buckets keyed by client.

    Args:
        limits: sustained rate and burst size.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, limits: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(limits.burst)
        self._rate = limits.per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """Take one token for ``client``; return 0, or the seconds to wait when empty."""
        now = self._clock()
        tokens, last = self._buckets.pop(client, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - last) * self._rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self._rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait

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
