"""``wait_event``: the kick-or-timeout wait of background loops."""

from __future__ import annotations

import asyncio

from timkit.core.lifecycle import wait_event


async def test_wait_event_returns_true_once_set() -> None:
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 30) is True


async def test_wait_event_returns_false_on_timeout() -> None:
    assert await wait_event(asyncio.Event(), 0.01) is False


async def test_cancellation_with_a_kick_at_the_same_moment_stops_the_loop() -> None:
    """A loop task cancelled while its event is set in the same tick still ends.

    This is how the RD's provisioning worker stops: its step tasks, cancelled together with
    it, kick it on their way out. ``asyncio.wait_for`` on Python 3.11 returned the event's
    result there and swallowed the cancellation, so the loop ran on and ``stop()`` hung.
    """
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            event.clear()
            await wait_event(event, 30)

    task = asyncio.create_task(loop())
    for _ in range(3):
        await asyncio.sleep(0)  # the loop is waiting on the event now
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done
    assert task.cancelled()
