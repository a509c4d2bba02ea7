"""The one token bucket (:mod:`timkit.core.ratelimit`) and its config model."""

from __future__ import annotations

import pytest

from timkit.core.config import parse_config
from timkit.core.errors import ConfigError
from timkit.core.ratelimit import RateLimit, TokenBuckets


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_grants_a_burst_then_refills_per_key() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(per_minute=60, burst=3), clock)
    assert [buckets.take("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("10.0.0.1") == pytest.approx(1.0)
    assert buckets.take("10.0.0.2") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("10.0.0.1") == pytest.approx(0.5)  # a refused try costs nothing
    clock.now += 0.5
    assert buckets.take("10.0.0.1") == 0.0
    clock.now += 3600
    assert [buckets.take("10.0.0.1") for _ in range(4)][-1] > 0  # refills to burst, no more


def test_token_buckets_forget_idle_clients_first() -> None:
    clock = Clock()
    buckets = TokenBuckets(RateLimit(per_minute=60, burst=2), clock, max_clients=3)
    buckets.take("busy")
    buckets.take("busy")
    clock.now += 10  # every bucket is full again
    buckets.take("busy")
    for key in ("a", "b", "c"):
        buckets.take(key)
    assert len(buckets) <= 3


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"per_minute": 0, "burst": 1}, "per_minute"),
        ({"per_minute": 1, "burst": 0}, "burst"),
        ({"per_minute": 1}, "burst"),
        ({"per_minute": 1, "burst": 1, "rate": 2}, "rate"),
        ({"per_minute": "1", "burst": 1}, "per_minute"),
    ],
)
def test_rate_limit_config_errors_name_the_key(settings: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_config(RateLimit, settings)
