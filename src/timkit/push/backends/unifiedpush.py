"""UnifiedPush delivery (SERV_1.2.0) — the Matrix gateway of UnifiedPush/common-proxies.

The device's ``pushkey`` is the endpoint URL. The body is ``{"notification": {...}}`` with
the notification's present fields minus ``devices`` (``gateway/matrix.go``), at most 4096
bytes, POSTed raw through the SSRF guard; redirects are not followed.

A pushkey that is no http(s) URL or that the SSRF guard refuses (a non-public address not
on ``outbound.allowed_origins``) is rejected without a request
(:class:`~timkit.push.ssrf.OutboundRefused`). Endpoint answers::

    2xx (201 expected)     delivered
    401-404, 410           endpoint gone                 → PushkeyRejected
    400, 413               bad or too large, don't retry → PermanentPushError
    429                    slow down *this endpoint*     → TemporaryPushError; the endpoint
                           is paused for Retry-After (else the app's ``backoff``) and
                           deliveries to it fail fast until then
    other                  unknown error, may retry      → TemporaryPushError
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Self

from timkit.push.backends.base import (
    Backend,
    PermanentPushError,
    PushkeyRejected,
    TemporaryPushError,
)
from timkit.push.config import OutboundConfig, UnifiedPushApp
from timkit.push.notify_request import Device, Notification
from timkit.push.payload import encode_within, notification_fields
from timkit.push.ssrf import OutboundClient

MAX_BODY = 4096
"""Largest push message an endpoint must accept (SERV_1.2.0)."""

MAX_PAUSED = 10_000
"""Endpoints whose slow-down is remembered at once; the oldest are forgotten first."""

MAX_PAUSE = 3600.0
"""Longest an endpoint is paused, whatever its ``Retry-After`` says."""


class UnifiedPushBackend(Backend):
    """Delivers to UnifiedPush endpoints (see the module docstring).

    Args:
        app_id: the app served.
        config: its ``[apps.<app_id>]`` table.
        client: the guarded outbound session.
        clock: monotonic seconds (tests pass their own).
    """

    kind = "unifiedpush"

    def __init__(
        self,
        app_id: str,
        config: UnifiedPushApp,
        client: OutboundClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(app_id)
        self.config = config
        self.client = client
        self._clock = clock
        self._paused: OrderedDict[str, float] = OrderedDict()

    @classmethod
    async def create(cls, app_id: str, config: Any, outbound: OutboundConfig) -> Self:
        """Open the guarded session."""
        assert isinstance(config, UnifiedPushApp)
        client = OutboundClient.from_config(outbound, limit=config.delivery.max_concurrency)
        return cls(app_id, config, client)

    def paused_for(self, endpoint: str) -> float:
        """Seconds ``endpoint`` still asked us to wait (0 when not paused)."""
        until = self._paused.get(endpoint)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._paused[endpoint]
            return 0.0
        return left

    def _pause(self, endpoint: str, seconds: float) -> None:
        now = self._clock()
        self._paused.pop(endpoint, None)
        self._paused[endpoint] = now + min(seconds, MAX_PAUSE)
        while len(self._paused) > MAX_PAUSED:
            self._paused.popitem(last=False)

    async def send(self, notification: Notification, device: Device) -> None:
        """POST the notification to the endpoint ``device.pushkey``, unless it is paused."""
        endpoint = device.pushkey
        left = self.paused_for(endpoint)
        if left > 0:
            raise TemporaryPushError("endpoint asked to slow down (429)", retry_after=left)
        try:
            body = encode_within(notification_fields(notification), MAX_BODY, wrap="notification")
        except ValueError as exc:
            raise PermanentPushError(str(exc)) from None
        response = await self.client.post(
            endpoint,
            body,
            {"Content-Type": "application/json"},
            allowed_endpoints=self.config.allowed_endpoints,
        )
        status = response.status
        if 200 <= status < 300:
            return
        message = f"endpoint answered {status}"
        if 401 <= status <= 404 or status == 410:
            raise PushkeyRejected(message)
        if status in (400, 413):
            raise PermanentPushError(message)
        retry_after = response.retry_after()
        if status == 429:
            pause = retry_after if retry_after is not None else self.config.delivery.backoff
            self._pause(endpoint, pause)
            retry_after = pause
        raise TemporaryPushError(message, retry_after=retry_after)

    async def close(self) -> None:
        """Close the session."""
        await self.client.close()
