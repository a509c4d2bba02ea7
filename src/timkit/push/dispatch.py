"""The dispatcher: one notification to each of its devices, with limits, retries and dedup.

For each device, concurrently:

1. **Backend** — the ``app_id``'s :class:`App`; an unknown ``app_id`` is rejected (Sygnal).
2. **De-duplication** — a notification with an ``event_id`` that was already *sent* to this
   device (``(event_id, app_id, pushkey)`` among the last ``dedup_size`` deliveries) is not
   sent again and counts as delivered. Only successful deliveries are remembered, so a
   homeserver retrying after a 502 gets the failed devices retried. A repeat arriving while
   the first is still being delivered waits for it and shares its outcome. Badge-only
   notifications (no ``event_id``) are never de-duplicated.
3. **Attempts** — at most ``max_concurrency`` attempts of one app run at once; each may take
   ``timeout`` seconds. :class:`TemporaryPushError` and time-outs are retried up to
   ``max_attempts`` with exponential back-off from ``backoff`` (a service's ``retry_after``
   instead, when it named one), each wait capped at ``max_backoff``.
   :class:`PushkeyRejected` ends in ``rejected``; :class:`PermanentPushError` is neither
   retried nor rejected. An unexpected exception is a bug: logged with its traceback,
   counted as ``error``, treated like a permanent failure.

One log line per notification names each device's app, truncated pushkey, outcome,
attempts and the reason of a failure — never the payload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from timkit.push.backends.base import (
    Backend,
    PermanentPushError,
    PushkeyRejected,
    TemporaryPushError,
)
from timkit.push.config import DeliveryConfig
from timkit.push.metrics import UNKNOWN_APP, PushMetrics
from timkit.push.notify_request import Device, Notification

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

DedupKey = tuple[str, str, str]


class Outcome(StrEnum):
    """How the delivery to one device ended."""

    SENT = "sent"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    UNKNOWN_APP = "unknown_app"
    FAILED = "failed"
    EXHAUSTED = "exhausted"
    ERROR = "error"


REJECTING = frozenset({Outcome.REJECTED, Outcome.UNKNOWN_APP})
"""Outcomes whose pushkey goes into ``rejected``."""


@dataclass(frozen=True)
class Delivery:
    """One device's result.

    Attributes:
        app_id: the device's app.
        pushkey: the device's pushkey.
        outcome: how it ended.
        attempts: attempts made (0 when none was needed or possible).
        reason: why it failed (no content); empty when sent.
    """

    app_id: str
    pushkey: str
    outcome: Outcome
    attempts: int = 0
    reason: str = ""


@dataclass(frozen=True)
class DispatchResult:
    """The devices' results, in the order of the notification's devices."""

    deliveries: tuple[Delivery, ...]

    @property
    def rejected(self) -> list[str]:
        """Pushkeys the homeserver should drop (each once, in order)."""
        keys = (d.pushkey for d in self.deliveries if d.outcome in REJECTING)
        return list(dict.fromkeys(keys))

    @property
    def unreachable(self) -> list[Delivery]:
        """Deliveries that still failed temporarily after every attempt."""
        return [d for d in self.deliveries if d.outcome is Outcome.EXHAUSTED]


class App:
    """A backend and the limits its deliveries run under.

    Args:
        backend: delivers for the app.
        delivery: concurrency, time-out and retry settings.
    """

    def __init__(self, backend: Backend, delivery: DeliveryConfig) -> None:
        self.backend = backend
        self.delivery = delivery
        self.semaphore = asyncio.Semaphore(delivery.max_concurrency)


def printable(text: str) -> str:
    """``text`` for a log line: as is when printable, else escaped (no forged lines)."""
    return text if text.isprintable() else repr(text)


def short(pushkey: str) -> str:
    """The first characters of ``pushkey``, enough to tell devices apart in a log."""
    return printable(pushkey if len(pushkey) <= 12 else pushkey[:8] + "…")


class Dispatcher:
    """Delivers notifications to their devices (see the module docstring).

    Args:
        apps: the backend of each configured ``app_id``.
        metrics: where deliveries are counted.
        dedup_size: successful deliveries remembered for de-duplication (0 = none).
        sleep: waits between attempts (tests pass their own).
    """

    def __init__(
        self,
        apps: Mapping[str, App],
        metrics: PushMetrics,
        *,
        dedup_size: int = 10_000,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.apps = dict(apps)
        self.metrics = metrics
        self.dedup_size = dedup_size
        self._sleep = sleep
        self._sent: OrderedDict[DedupKey, None] = OrderedDict()
        self._pending: dict[DedupKey, asyncio.Future[Delivery]] = {}

    async def dispatch(self, notification: Notification) -> DispatchResult:
        """Deliver ``notification`` to all its devices concurrently; never raises for them."""
        started = time.monotonic()
        self.metrics.notifications.inc()
        deliveries = await asyncio.gather(
            *(self._deliver(notification, device, started) for device in notification.devices)
        )
        result = DispatchResult(tuple(deliveries))
        self._log(notification, result, started)
        return result

    async def _deliver(
        self, notification: Notification, device: Device, started: float
    ) -> Delivery:
        app = self.apps.get(device.app_id)
        label = device.app_id if app is not None else UNKNOWN_APP
        if app is None:
            delivery = Delivery(
                device.app_id, device.pushkey, Outcome.UNKNOWN_APP, reason="unknown app_id"
            )
        else:
            delivery = await self._deduplicated(app, notification, device)
        self.metrics.deliveries.labels(label, delivery.outcome.value).inc()
        if delivery.outcome in REJECTING:
            self.metrics.rejected.labels(label).inc()
        self.metrics.delivery_seconds.labels(label).observe(time.monotonic() - started)
        return delivery

    async def _deduplicated(self, app: App, notification: Notification, device: Device) -> Delivery:
        if notification.event_id is None or self.dedup_size == 0:
            return await self._attempts(app, notification, device)
        key = (notification.event_id, device.app_id, device.pushkey)
        if key in self._sent:
            self._sent.move_to_end(key)
            return Delivery(device.app_id, device.pushkey, Outcome.DUPLICATE)
        pending = self._pending.get(key)
        if pending is not None:
            first = await asyncio.shield(pending)
            if first.outcome is Outcome.SENT:
                return replace(first, outcome=Outcome.DUPLICATE, attempts=0)
            return first
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        delivery = Delivery(device.app_id, device.pushkey, Outcome.EXHAUSTED, reason="cancelled")
        try:
            delivery = await self._attempts(app, notification, device)
            if delivery.outcome is Outcome.SENT:
                self._remember(key)
            return delivery
        finally:
            del self._pending[key]
            future.set_result(delivery)

    def _remember(self, key: DedupKey) -> None:
        self._sent[key] = None
        while len(self._sent) > self.dedup_size:
            self._sent.popitem(last=False)

    async def _attempts(self, app: App, notification: Notification, device: Device) -> Delivery:
        settings = app.delivery
        in_flight = self.metrics.in_flight.labels(device.app_id)
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                async with app.semaphore:
                    with in_flight.track_inprogress():
                        async with asyncio.timeout(settings.timeout):
                            await app.backend.send(notification, device)
                return Delivery(device.app_id, device.pushkey, Outcome.SENT, attempt)
            except PushkeyRejected as exc:
                return Delivery(device.app_id, device.pushkey, Outcome.REJECTED, attempt, str(exc))
            except PermanentPushError as exc:
                return Delivery(device.app_id, device.pushkey, Outcome.FAILED, attempt, str(exc))
            except TemporaryPushError as exc:
                reason, retry_after = str(exc), exc.retry_after
            except TimeoutError:
                reason = f"timed out after {settings.timeout:g} s"
            except Exception:
                log.exception("delivery for app %s failed unexpectedly", device.app_id)
                return Delivery(
                    device.app_id, device.pushkey, Outcome.ERROR, attempt, "unexpected error"
                )
            if attempt >= settings.max_attempts:
                return Delivery(device.app_id, device.pushkey, Outcome.EXHAUSTED, attempt, reason)
            self.metrics.retries.labels(device.app_id).inc()
            if retry_after is None:
                retry_after = settings.backoff * 2 ** (attempt - 1)
            await self._sleep(min(retry_after, settings.max_backoff))

    def _log(self, notification: Notification, result: DispatchResult, started: float) -> None:
        parts = []
        for d in result.deliveries:
            part = (
                f"[app_id={printable(d.app_id)} pushkey={short(d.pushkey)} outcome={d.outcome} "
                f"attempts={d.attempts}"
            )
            parts.append(part + (f' reason="{printable(d.reason)}"]' if d.reason else "]"))
        log.info(
            "notify event_id=%s prio=%s devices=%d ms=%.1f %s",
            printable(notification.event_id or "-"),
            notification.prio,
            len(result.deliveries),
            (time.monotonic() - started) * 1000,
            " ".join(parts),
        )

    async def close(self) -> None:
        """Close every backend."""
        for app in self.apps.values():
            await app.backend.close()
