"""The one federation-list puller (:mod:`timkit.core.list_puller`) with a minimal adapter.

The adapter's upstream hands out lists really signed by a local PKI's list signer (or by a
forger); the puller verifies them against that PKI's CA. The RD's and the proxy's adapters
are tested end to end in ``tests/registration/test_list_cache.py`` and
``tests/proxy/test_list_gate.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.forged_lists import Issued, list_signer, sign_list
from tests.support.wait import async_wait_until
from timkit.core.errors import TimkitError
from timkit.core.federation_list import LIST_SIGNER_ROLE
from timkit.core.list_puller import HeldList, ListPuller
from timkit.core.tls import LocalPKI

T0 = 1_800_000_000.0


@dataclass(frozen=True)
class Settings:
    """What a puller reads (:class:`timkit.core.list_puller.PullSettings`)."""

    trust_anchors: tuple[Path, ...]
    interval: float = 3600
    retry_interval: float = 600
    ttl: float = 7200
    sig_alg: str = "BP256R1"
    signer_role: str = LIST_SIGNER_ROLE


class Adapter(ListPuller[Settings]):
    """An upstream serving ``self.jws`` (None: "current"), persistence in a list."""

    def __init__(self, settings: Settings, now: list[float]) -> None:
        super().__init__(settings, clock=lambda: now[0])
        self.jws: bytes | None = None
        self.asked: list[int | None] = []
        self.stored: list[tuple[int, float]] = []
        self.failing = False

    def anchor_paths(self) -> tuple[Path, ...]:
        return self.settings.trust_anchors

    async def fetch(self, held: HeldList | None) -> bytes | None:
        self.asked.append(held.version if held else None)
        if self.failing:
            raise TimkitError(502, "TIMKIT_UPSTREAM", "upstream down")
        return self.jws

    async def store(self, candidate: HeldList) -> bool:
        self.stored.append((candidate.version, candidate.refreshed))
        return True

    async def store_refreshed(self, held: HeldList) -> None:
        self.stored.append((held.version, held.refreshed))

    async def after_pull(self, error: TimkitError | None) -> float:
        return self.settings.retry_interval if error else self.settings.interval


class Upstream:
    def __init__(self, pki: LocalPKI) -> None:
        self.signer: Issued = list_signer(pki)

    def list(self, version: int, domains: tuple[str, ...] = ("a.tim.test",)) -> bytes:
        return sign_list(self.signer, [self.signer.cert], version, domains)


@pytest.fixture
def pki(tmp_path: Path) -> LocalPKI:
    return LocalPKI(tmp_path / "pki")


@pytest.fixture
async def puller(pki: LocalPKI) -> AsyncIterator[Adapter]:
    adapter = Adapter(Settings(trust_anchors=(pki.ca_cert_path,)), [T0])
    yield adapter
    await adapter.stop_pulling()


async def test_ml_123891_only_strictly_newer_versions_are_held(
    puller: Adapter, pki: LocalPKI
) -> None:
    upstream = Upstream(pki)
    puller.jws = upstream.list(3)
    assert await puller.refresh() is True
    assert puller.held is not None
    assert puller.held.version == 3
    puller.jws = upstream.list(3, ("b.tim.test",))  # same version, other content
    assert await puller.refresh() is False
    puller.jws = upstream.list(2)  # rolled back
    assert await puller.refresh() is False
    assert puller.held.version == 3
    assert puller.held.parsed.contains("a.tim.test")
    puller.jws = upstream.list(4, ("b.tim.test",))
    assert await puller.refresh() is True
    assert puller.held.version == 4
    assert puller.floor == 4
    assert [version for version, _ in puller.stored] == [3, 4]


async def test_ml_123891_the_floor_holds_while_no_list_is_held(
    puller: Adapter, pki: LocalPKI
) -> None:
    puller.floor = 5  # a persisted list of version 5 no longer verified on load
    puller.jws = Upstream(pki).list(4)
    assert await puller.refresh() is False
    assert puller.held is None
    puller.jws = Upstream(pki).list(5)
    assert await puller.refresh() is True


async def test_ml_123891_a_list_from_a_foreign_signer_is_never_held(
    puller: Adapter, tmp_path: Path
) -> None:
    puller.jws = Upstream(LocalPKI(tmp_path / "forger")).list(9, ("evil.tim.test",))
    with pytest.raises(TimkitError) as refused:
        await puller.refresh()
    assert refused.value.errcode == "TIM_FEDERATION_LIST_INVALID"
    assert puller.held is None
    assert puller.stored == []


async def test_ml_137902_ttl_counts_from_the_last_valid_refresh(
    puller: Adapter, pki: LocalPKI
) -> None:
    now = [T0]
    puller.clock = lambda: now[0]
    assert puller.expired()  # no list: fail closed
    puller.jws = Upstream(pki).list(1)
    await puller.refresh()
    now[0] += 7199
    assert not puller.expired()
    now[0] += 2
    assert puller.expired()
    puller.jws = None  # the upstream confirms the held list as current
    assert await puller.refresh() is False
    assert not puller.expired()
    assert puller.held is not None
    assert puller.held.refreshed == now[0]
    assert puller.stored[-1] == (1, now[0])


async def test_ml_137902_a_kick_pulls_before_the_interval(puller: Adapter, pki: LocalPKI) -> None:
    puller.jws = Upstream(pki).list(1)
    puller.start_pulling()
    await async_wait_until(lambda: len(puller.asked) == 1, "the first pull", timeout=10)
    puller.kick()
    await async_wait_until(lambda: len(puller.asked) == 2, "the kicked pull", timeout=10)
    assert puller.asked == [None, 1]


async def test_a_failed_pull_keeps_the_list_and_asks_the_retry_policy(
    puller: Adapter, pki: LocalPKI
) -> None:
    puller.jws = Upstream(pki).list(1)
    assert await puller.tick() == 3600
    puller.failing = True
    assert await puller.tick() == 600
    assert puller.held is not None
    assert puller.held.version == 1
