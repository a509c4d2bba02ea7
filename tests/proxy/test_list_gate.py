"""The proxy's federation list: pulled from an RD over TLS, verified, held, failing closed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.proxy.stand_ins import TOKEN, FakeRd, sign_list
from tests.support.forged_lists import EVIL, forgeries
from tests.support.wait import async_wait_until
from timkit.core import jwt
from timkit.core.errors import TimkitError
from timkit.core.tls import LocalPKI, server_ssl_context
from timkit.core.web import running_app
from timkit.proxy.config import FederationListConfig
from timkit.proxy.list_gate import MISSING, OUTDATED, FederationGate
from timkit.proxy.metrics import ProxyMetrics


@dataclass
class Stack:
    rd: FakeRd
    pki: LocalPKI
    settings: FederationListConfig
    now: list[float]

    def gate(self) -> FederationGate:
        return FederationGate(self.settings, ProxyMetrics(), clock=lambda: self.now[0])

    def publish(self, version: int, domains: list[str]) -> None:
        self.rd.jws, self.rd.version = sign_list(self.pki, version, domains), version


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    pki = LocalPKI(tmp_path / "pki")
    tls = pki.ensure_server_cert("rd", ["127.0.0.1", "localhost"])
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    rd = FakeRd()
    async with running_app(rd.app(), "127.0.0.1", 0, server_ssl_context(tls)) as runner:
        port = runner.addresses[0][1]
        settings = FederationListConfig(
            url=f"https://127.0.0.1:{port}/federation",
            token_file=token_file,
            ca_file=pki.ca_cert_path,
            trust_anchors=(pki.ca_cert_path,),
            interval=3600,
            retry_interval=3600,
            miss_refresh_interval=60,
            state_file=tmp_path / "state" / "federation-list.json",
        )
        yield Stack(rd, pki, settings, [1_800_000_000.0])


@pytest.fixture
async def gate(stack: Stack) -> AsyncIterator[FederationGate]:
    gate = stack.gate()
    await gate.start(background=False)  # each test pulls explicitly
    yield gate
    await gate.close()


async def test_af_10064_domain_membership_from_the_verified_list(
    stack: Stack, gate: FederationGate
) -> None:
    stack.publish(3, ["praxis.tim.test", "Klinik.TIM.test"])
    assert await gate.refresh() is True
    gate.check("praxis.tim.test", "AF_10064")
    gate.check("klinik.tim.test", "AF_10064")  # case-insensitive
    with pytest.raises(TimkitError) as refused:
        gate.check("matrix.org", "ML-123665")
    assert refused.value.status == 403
    assert refused.value.requirement == "ML-123665"
    assert "matrix.org" in refused.value.message
    assert gate.metrics.list_version._value.get() == 3


async def test_ml_137902_pull_passes_the_held_version_and_304_counts_as_refresh(
    stack: Stack, gate: FederationGate
) -> None:
    stack.publish(5, ["a.tim.test"])
    await gate.refresh()
    stack.now[0] += 3600
    assert await gate.refresh() is False  # 304: current
    assert stack.rd.asked == [None, "5"]
    assert gate.held is not None
    assert gate.held.refreshed == stack.now[0]


async def test_ml_137902_pulls_once_per_interval_in_the_background(stack: Stack) -> None:
    stack.publish(1, ["a.tim.test"])
    settings = stack.settings.model_copy(update={"interval": 0.05})
    gate = FederationGate(settings, ProxyMetrics(), clock=lambda: stack.now[0])
    await gate.start()
    try:
        await async_wait_until(lambda: len(stack.rd.asked) >= 3, "three pulls", timeout=10)
    finally:
        await gate.close()
    assert stack.rd.asked[:3] == [None, "1", "1"]


async def test_ml_123891_a_list_with_a_bad_signature_is_never_used(
    stack: Stack, gate: FederationGate, tmp_path: Path
) -> None:
    stack.publish(1, ["a.tim.test"])
    await gate.refresh()
    forged = sign_list(LocalPKI(tmp_path / "evil"), 9, ["evil.example"], name="forger")
    header, _, signature = stack.rd.jws.split(b".") if stack.rd.jws else (b"", b"", b"")
    payload = jwt.b64url(orjson.dumps({"version": 9, "domainList": [{"domain": "evil.example"}]}))
    tampered = b".".join([header, payload.encode(), signature])
    for bad in (forged, tampered):
        stack.rd.jws, stack.rd.version = bad, 9
        with pytest.raises(TimkitError) as rejected:
            await gate.refresh()
        assert rejected.value.errcode == "TIM_FEDERATION_LIST_INVALID"
        assert gate.held is not None
        assert gate.held.version == 1
        with pytest.raises(TimkitError):
            gate.check("evil.example", "AF_10064")


async def test_ml_123891_a_rolled_back_version_is_ignored(
    stack: Stack, gate: FederationGate
) -> None:
    stack.publish(7, ["a.tim.test"])
    await gate.refresh()
    stack.publish(6, ["a.tim.test", "b.tim.test"])
    assert await gate.refresh() is False
    assert gate.held is not None
    assert gate.held.version == 7
    with pytest.raises(TimkitError):
        gate.check("b.tim.test", "AF_10064")


async def test_ml_137902_no_valid_refresh_for_72_h_blocks_all_federation(
    stack: Stack, gate: FederationGate
) -> None:
    stack.publish(2, ["a.tim.test"])
    await gate.refresh()
    stack.now[0] += 72 * 3600 - 1
    gate.check("a.tim.test", "AF_10064")
    assert gate.health()[0] is True
    stack.now[0] += 2
    with pytest.raises(TimkitError) as blocked:
        gate.check("a.tim.test", "AF_10064")
    assert blocked.value.status == 503
    assert blocked.value.errcode == OUTDATED
    healthy, state = gate.health()
    assert not healthy
    assert state["errcode"] == OUTDATED
    await gate.refresh()  # the RD confirms the list (304): current again
    gate.check("a.tim.test", "AF_10064")


async def test_an_rd_reporting_its_list_outdated_blocks_at_once(
    stack: Stack, gate: FederationGate
) -> None:
    stack.publish(2, ["a.tim.test"])
    await gate.refresh()
    stack.rd.outdated = True
    with pytest.raises(TimkitError):
        await gate.refresh()
    with pytest.raises(TimkitError) as blocked:
        gate.check("a.tim.test", "AF_10064")
    assert blocked.value.errcode == OUTDATED


async def test_without_any_list_everything_is_refused(gate: FederationGate) -> None:
    with pytest.raises(TimkitError) as refused:
        gate.check("a.tim.test", "AF_10064")
    assert refused.value.status == 503
    assert refused.value.errcode == MISSING


async def test_the_last_good_list_survives_a_restart_without_the_rd(
    stack: Stack, gate: FederationGate
) -> None:
    stack.publish(4, ["a.tim.test"])
    await gate.refresh()
    stack.settings = stack.settings.model_copy(update={"url": "https://127.0.0.1:9/federation"})
    restarted = stack.gate()
    await restarted.start()
    try:
        assert restarted.held is not None
        assert restarted.held.version == 4
        restarted.check("a.tim.test", "AF_10064")
    finally:
        await restarted.close()


async def test_a_persisted_list_that_no_longer_verifies_is_dropped(
    stack: Stack, gate: FederationGate, tmp_path: Path
) -> None:
    stack.publish(4, ["a.tim.test"])
    await gate.refresh()
    other = LocalPKI(tmp_path / "other")
    other.ensure_ca()
    stack.settings = stack.settings.model_copy(
        update={"trust_anchors": (other.ca_cert_path,), "url": "https://127.0.0.1:9/federation"}
    )
    restarted = stack.gate()
    await restarted.start()
    try:
        assert restarted.held is None
    finally:
        await restarted.close()


async def test_a_missing_domain_pulls_once_more_but_not_on_every_request(
    stack: Stack, gate: FederationGate
) -> None:
    stack.publish(1, ["a.tim.test"])
    await gate.refresh()
    stack.publish(2, ["a.tim.test", "new.tim.test"])
    await gate.recheck("new.tim.test", "AF_10064")  # unknown: pulled, now listed
    assert stack.rd.asked == [None, "1"]
    for _ in range(3):
        with pytest.raises(TimkitError):
            await gate.recheck("other.tim.test", "AF_10064")
    assert len(stack.rd.asked) == 2  # the interval has not passed: no more pulls


async def test_the_rd_token_is_sent_and_a_wrong_one_fails(
    stack: Stack, gate: FederationGate, tmp_path: Path
) -> None:
    stack.publish(1, ["a.tim.test"])
    assert stack.settings.token_file is not None
    stack.settings.token_file.write_text("wrong")
    with pytest.raises(TimkitError) as failed:
        await gate.refresh()
    assert "401" in failed.value.message
    assert gate.held is None


# -- issue 14, finding 2 -----------------------------------------------------------------------


async def test_ml_123677_forged_lists_from_the_rd_never_admit_evil(
    stack: Stack, gate: FederationGate
) -> None:
    """Every forgery of the finding, served by the RD stand-in over TLS, is refused."""
    stack.publish(1, ["a.tim.test"])
    await gate.refresh()
    for name, forged in forgeries(stack.pki).items():
        settings = stack.settings.model_copy(update={"sig_alg": forged.sig_alg})
        gate.settings = settings
        stack.rd.jws, stack.rd.version = forged.jws, 10**6
        with pytest.raises(TimkitError) as rejected:
            await gate.refresh()
        assert rejected.value.errcode == "TIM_FEDERATION_LIST_INVALID", name
        assert forged.rule in rejected.value.message, name
        assert gate.held is not None
        assert gate.held.version == 1, name
        with pytest.raises(TimkitError) as refused:
            gate.check(EVIL, "ML-123665")
        assert refused.value.status == 403, name
        # a miss pulls once more: the forged list is refused again
        gate._last_miss_pull = float("-inf")
        with pytest.raises(TimkitError):
            await gate.recheck(EVIL, "ML-123665")
        gate.check("a.tim.test", "AF_10064")


async def test_ml_123677_a_fresh_proxy_without_a_list_refuses_forged_lists(
    stack: Stack, gate: FederationGate
) -> None:
    forged = forgeries(stack.pki)["tls-leaf-as-ca"]
    stack.rd.jws, stack.rd.version = forged.jws, 10**6
    with pytest.raises(TimkitError):
        await gate.refresh()
    assert gate.held is None
    with pytest.raises(TimkitError) as refused:
        gate.check(EVIL, "ML-123665")
    assert refused.value.errcode == MISSING
    assert not stack.settings.state_file.exists()


async def test_ml_123891_the_version_floor_survives_a_restart(
    stack: Stack, gate: FederationGate
) -> None:
    """An older list in the state file after a newer one was accepted is never loaded, and
    the RD cannot roll the restarted proxy back either."""
    stack.publish(3, ["a.tim.test", "old.tim.test"])
    await gate.refresh()
    older = stack.rd.jws
    assert older is not None
    stack.publish(5, ["a.tim.test"])
    await gate.refresh()
    state = orjson.loads(stack.settings.state_file.read_bytes())
    assert state["highest_version"] == 5
    # the state file gets the older list (as a restored copy or a second writer would leave it)
    state["jws"] = older.decode()
    stack.settings.state_file.write_bytes(orjson.dumps(state))
    stack.rd.jws, stack.rd.version = older, 3
    restarted = stack.gate()
    await restarted.start(background=False)
    try:
        assert restarted.held is None
        assert restarted.floor == 5
        with pytest.raises(TimkitError):
            restarted.check("old.tim.test", "AF_10064")
        assert await restarted.refresh() is False  # the RD's version 3 is below the floor
        assert restarted.held is None
        stack.publish(5, ["a.tim.test"])  # the current list is taken again
        assert await restarted.refresh() is True
        restarted.check("a.tim.test", "AF_10064")
        with pytest.raises(TimkitError):
            restarted.check("old.tim.test", "AF_10064")
    finally:
        await restarted.close()
    assert orjson.loads(stack.settings.state_file.read_bytes())["highest_version"] == 5


async def test_ml_123891_a_state_file_from_before_the_floor_sets_it_from_its_list(
    stack: Stack, gate: FederationGate
) -> None:
    stack.publish(4, ["a.tim.test"])
    await gate.refresh()
    state = orjson.loads(stack.settings.state_file.read_bytes())
    del state["highest_version"]  # written by an earlier timkit
    stack.settings.state_file.write_bytes(orjson.dumps(state))
    restarted = stack.gate()
    await restarted.start(background=False)
    try:
        assert restarted.held is not None
        assert restarted.floor == 4
    finally:
        await restarted.close()
