"""The dispatcher: retries and back-off, time-outs, concurrency, de-duplication."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.push.fakes import ScriptedBackend
from timkit.core.config import parse_config
from timkit.push.backends.base import PermanentPushError, PushkeyRejected, TemporaryPushError
from timkit.push.config import DeliveryConfig
from timkit.push.dispatch import App, Dispatcher, Outcome
from timkit.push.metrics import PushMetrics
from timkit.push.notify_request import Notification


def notification(*pushkeys: str, event_id: str | None = "$e") -> Notification:
    return Notification.model_validate(
        {
            "event_id": event_id,
            "room_id": "!r:a.tim.test",
            "devices": [{"app_id": "app", "pushkey": key} for key in pushkeys],
        }
    )


class Setup:
    """A dispatcher over one scripted backend; its waits are recorded, not slept."""

    def __init__(self, dedup_size: int = 100, **delivery: Any) -> None:
        settings = {"max_attempts": 4, "backoff": 0.5, "max_backoff": 3.0} | delivery
        self.backend = ScriptedBackend("app")
        self.slept: list[float] = []
        self.dispatcher = Dispatcher(
            {"app": App(self.backend, parse_config(DeliveryConfig, settings))},
            PushMetrics(),
            dedup_size=dedup_size,
            sleep=self._sleep,
        )

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_temporary_failures_retried_with_doubling_backoff_capped() -> None:
    setup = Setup()
    setup.backend.script = {"k": [TemporaryPushError("503")] * 3}
    result = await setup.dispatcher.dispatch(notification("k"))
    assert result.deliveries[0].outcome is Outcome.SENT
    assert result.deliveries[0].attempts == 4
    assert setup.slept == [0.5, 1.0, 2.0]

    setup.backend.script = {"k": [TemporaryPushError("503")] * 4}
    exhausted = await setup.dispatcher.dispatch(notification("k", event_id="$2"))
    assert exhausted.deliveries[0].outcome is Outcome.EXHAUSTED
    assert exhausted.deliveries[0].reason == "503"
    assert setup.slept[3:] == [0.5, 1.0, 2.0]
    assert exhausted.unreachable == [exhausted.deliveries[0]]


async def test_backoff_is_capped_by_max_backoff() -> None:
    setup = Setup(backoff=2.0, max_backoff=3.0)
    setup.backend.script = {"k": [TemporaryPushError("503")] * 3}
    await setup.dispatcher.dispatch(notification("k"))
    assert setup.slept == [2.0, 3.0, 3.0]


async def test_retry_after_is_honoured_up_to_max_backoff() -> None:
    setup = Setup()
    setup.backend.script = {
        "k": [TemporaryPushError("429", retry_after=1.5), TemporaryPushError("429", retry_after=60)]
    }
    result = await setup.dispatcher.dispatch(notification("k"))
    assert result.deliveries[0].outcome is Outcome.SENT
    assert setup.slept == [1.5, 3.0]


async def test_rejected_and_permanent_failures_are_not_retried() -> None:
    setup = Setup()
    setup.backend.script = {"gone": [PushkeyRejected("410")], "bad": [PermanentPushError("413")]}
    result = await setup.dispatcher.dispatch(notification("gone", "bad"))
    assert [d.outcome for d in result.deliveries] == [Outcome.REJECTED, Outcome.FAILED]
    assert [d.attempts for d in result.deliveries] == [1, 1]
    assert result.rejected == ["gone"]
    assert setup.slept == []


async def test_unexpected_exception_is_an_error_not_retried() -> None:
    setup = Setup()
    setup.backend.script = {"k": [RuntimeError("bug")]}  # type: ignore[list-item]
    result = await setup.dispatcher.dispatch(notification("k"))
    assert result.deliveries[0].outcome is Outcome.ERROR
    assert result.rejected == []
    assert result.unreachable == []


async def test_each_attempt_is_timed_out_and_retried() -> None:
    setup = Setup(timeout=0.05, max_attempts=2)
    setup.backend.gate = asyncio.Event()  # never set: every attempt hangs
    result = await setup.dispatcher.dispatch(notification("k"))
    assert result.deliveries[0].outcome is Outcome.EXHAUSTED
    assert result.deliveries[0].attempts == 2
    assert "timed out" in result.deliveries[0].reason


async def test_concurrency_limit_is_respected_and_devices_run_concurrently() -> None:
    setup = Setup(max_concurrency=3)
    gate = setup.backend.gate = asyncio.Event()
    task = asyncio.create_task(
        setup.dispatcher.dispatch(notification(*(f"k{i}" for i in range(10))))
    )
    await setup.backend.wait_sends(3)
    for _ in range(20):  # give any fourth send every chance to start
        await asyncio.sleep(0)
    assert setup.backend.active == 3
    gate.set()
    result = await task
    assert setup.backend.peak == 3
    assert all(d.outcome is Outcome.SENT for d in result.deliveries)


async def test_deduplication_remembers_only_successes_and_forgets_the_oldest() -> None:
    setup = Setup(dedup_size=2)
    setup.backend.script = {"k": [PermanentPushError("400")]}
    failed = await setup.dispatcher.dispatch(notification("k", event_id="$a"))
    assert failed.deliveries[0].outcome is Outcome.FAILED
    sent = await setup.dispatcher.dispatch(notification("k", event_id="$a"))
    assert sent.deliveries[0].outcome is Outcome.SENT
    repeat = await setup.dispatcher.dispatch(notification("k", event_id="$a"))
    assert repeat.deliveries[0].outcome is Outcome.DUPLICATE
    await setup.dispatcher.dispatch(notification("k", event_id="$b"))
    await setup.dispatcher.dispatch(notification("k", event_id="$c"))  # evicts $a
    again = await setup.dispatcher.dispatch(notification("k", event_id="$a"))
    assert again.deliveries[0].outcome is Outcome.SENT
    assert len(setup.backend.sends) == 5


async def test_repeat_while_in_flight_shares_the_first_outcome() -> None:
    setup = Setup()
    gate = setup.backend.gate = asyncio.Event()
    first = asyncio.create_task(setup.dispatcher.dispatch(notification("k")))
    await setup.backend.wait_sends(1)
    second = asyncio.create_task(setup.dispatcher.dispatch(notification("k")))
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    results = [await first, await second]
    assert [r.deliveries[0].outcome for r in results] == [Outcome.SENT, Outcome.DUPLICATE]
    assert len(setup.backend.sends) == 1


async def test_dedup_size_zero_turns_it_off() -> None:
    setup = Setup(dedup_size=0)
    await setup.dispatcher.dispatch(notification("k"))
    await setup.dispatcher.dispatch(notification("k"))
    assert len(setup.backend.sends) == 2


async def test_same_pushkey_twice_is_rejected_once() -> None:
    setup = Setup(dedup_size=0)
    setup.backend.script = {"k": [PushkeyRejected("404"), PushkeyRejected("404")]}
    result = await setup.dispatcher.dispatch(notification("k", "k"))
    assert result.rejected == ["k"]


async def test_close_closes_the_backends() -> None:
    setup = Setup()
    await setup.dispatcher.close()
    assert setup.backend.closed
