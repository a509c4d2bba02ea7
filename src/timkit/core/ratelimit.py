"""The one token bucket: a rate limit per client key, kept in memory, and its config model.

Each key (a client IP, ``client:<client_id>`` …) owns a bucket of ``burst`` tokens refilled
at ``per_minute / 60`` tokens per second; a request takes one token, a request finding none
learns how many seconds until one is back (:meth:`TokenBuckets.take`). How a refusal is
answered is the component's business (429 ``M_LIMIT_EXCEEDED`` with ``retry_after_ms`` at the
Registrierungs-Dienst, 429 OAuth ``slow_down`` with ``Retry-After`` at the FHIR-Proxy).

State is per process (several processes limit each on their own) and bounded: beyond
``max_clients`` keys, full buckets (idle clients) are forgotten first, then the least
recently seen, which at worst gives that client a fresh burst. Callers run on the event
loop, so no lock is needed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import Field

from timkit.core.config import StrictModel

Clock = Callable[[], float]
"""Monotonic seconds."""
MAX_CLIENTS = 10000
"""Keys kept at most unless the caller says otherwise."""


class RateLimit(StrictModel):
    """A token bucket per client, kept in memory (one per process).

    Attributes:
        per_minute: sustained requests per minute and client (the refill rate).
        burst: requests a client may make at once (the bucket's size).
    """

    per_minute: float = Field(gt=0, le=1_000_000)
    burst: int = Field(ge=1, le=1_000_000)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """One token bucket per key, all of one :class:`RateLimit`.

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
