"""UnifiedPush: raw POST of the notification, status mapping, per-endpoint slow-down."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.push.fakes import FakePushService
from timkit.core.config import parse_config
from timkit.push.backends.base import (
    PermanentPushError,
    PushkeyRejected,
    TemporaryPushError,
)
from timkit.push.backends.unifiedpush import UnifiedPushBackend
from timkit.push.config import OutboundConfig, UnifiedPushApp
from timkit.push.notify_request import Device, Notification
from timkit.push.ssrf import OutboundClient


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class UnifiedPush:
    def __init__(self, backend: UnifiedPushBackend, clock: Clock) -> None:
        self.backend = backend
        self.clock = clock

    async def send(self, endpoint: str, **fields: Any) -> None:
        device = {"app_id": "up", "pushkey": endpoint}
        body = {"event_id": "$ev", "room_id": "!r:a.tim.test", **fields, "devices": [device]}
        await self.backend.send(Notification.model_validate(body), Device.model_validate(device))


@pytest.fixture
async def unifiedpush() -> AsyncIterator[UnifiedPush]:
    config = parse_config(UnifiedPushApp, {"type": "unifiedpush", "delivery": {"backoff": 2.0}})
    client = OutboundClient.from_config(OutboundConfig(allowed_networks=("127.0.0.0/8",)))
    clock = Clock()
    backend = UnifiedPushBackend("up", config, client, clock=clock)
    try:
        yield UnifiedPush(backend, clock)
    finally:
        await backend.close()


async def test_posts_the_notification_without_devices(
    unifiedpush: UnifiedPush, push_service: FakePushService
) -> None:
    await unifiedpush.send(push_service.url(), counts={"unread": 3}, prio="low")
    [request] = push_service.requests
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "notification": {
            "event_id": "$ev",
            "room_id": "!r:a.tim.test",
            "prio": "low",
            "counts": {"unread": 3},
        }
    }


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, PushkeyRejected),
        (403, PushkeyRejected),
        (404, PushkeyRejected),
        (410, PushkeyRejected),
        (400, PermanentPushError),
        (413, PermanentPushError),
        (500, TemporaryPushError),
        (302, TemporaryPushError),
    ],
)
async def test_status_mapping(
    unifiedpush: UnifiedPush, push_service: FakePushService, status: int, error: type[Exception]
) -> None:
    push_service.preload("/push/1", status)
    with pytest.raises(error) as raised:
        await unifiedpush.send(push_service.url())
    assert type(raised.value) is error


async def test_any_2xx_is_success(unifiedpush: UnifiedPush, push_service: FakePushService) -> None:
    push_service.preload("/push/1", 200, 201, 202)
    for _ in range(3):
        await unifiedpush.send(push_service.url())


async def test_429_pauses_that_endpoint_only(
    unifiedpush: UnifiedPush, push_service: FakePushService
) -> None:
    slow, other = push_service.url("/push/slow"), push_service.url("/push/other")
    push_service.preload("/push/slow", (429, {"Retry-After": "30"}))
    with pytest.raises(TemporaryPushError) as first:
        await unifiedpush.send(slow)
    assert first.value.retry_after == 30.0

    unifiedpush.clock.now += 10
    with pytest.raises(TemporaryPushError, match="slow down") as paused:
        await unifiedpush.send(slow)
    assert paused.value.retry_after == 20.0
    assert len(push_service.to("/push/slow")) == 1  # not sent while paused

    await unifiedpush.send(other)
    unifiedpush.clock.now += 21
    await unifiedpush.send(slow)
    assert len(push_service.to("/push/slow")) == 2


async def test_429_without_retry_after_pauses_for_the_backoff(
    unifiedpush: UnifiedPush, push_service: FakePushService
) -> None:
    push_service.preload("/push/1", 429)
    with pytest.raises(TemporaryPushError) as raised:
        await unifiedpush.send(push_service.url())
    assert raised.value.retry_after == 2.0
    assert unifiedpush.backend.paused_for(push_service.url()) == 2.0
