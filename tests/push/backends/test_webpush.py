"""WebPush: real aes128gcm encryption and VAPID, status mapping, payload shape."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.push.fakes import FakePushService, Subscription, verify_vapid, write_vapid_key
from timkit.core.config import parse_config
from timkit.core.errors import ConfigError
from timkit.push.backends.base import (
    PermanentPushError,
    PushkeyRejected,
    TemporaryPushError,
)
from timkit.push.backends.webpush import MAX_RECORD, WebPushBackend
from timkit.push.config import OutboundConfig, WebPushApp
from timkit.push.notify_request import Device, Notification
from timkit.push.ssrf import EndpointNotAllowed, OutboundRefused

CONTACT = "mailto:push-admin@a.tim.test"
LOOPBACK = OutboundConfig(allowed_networks=("127.0.0.0/8",))


class WebPush:
    """A WebPush backend with its VAPID key, and a subscription at the fake service."""

    def __init__(self, backend: WebPushBackend, key: ec.EllipticCurvePrivateKey, sub: Subscription):
        self.backend = backend
        self.vapid_key = key
        self.subscription = sub

    async def send(
        self, fields: dict[str, Any] | None = None, device: dict[str, Any] | None = None
    ) -> None:
        body = {"event_id": "$ev1", "room_id": "!room:a.tim.test", "counts": {"unread": 1}}
        device = device or self.subscription.device()
        notification = Notification.model_validate({**body, **(fields or {}), "devices": [device]})
        await self.backend.send(notification, Device.model_validate(device))


def app_config(key_file: Path, **values: Any) -> WebPushApp:
    return parse_config(
        WebPushApp,
        {"type": "webpush", "vapid_private_key": str(key_file), "vapid_contact": CONTACT, **values},
    )


@pytest.fixture
async def webpush(tmp_path: Path, push_service: FakePushService) -> AsyncIterator[WebPush]:
    key = write_vapid_key(tmp_path / "vapid.pem")
    backend = await WebPushBackend.create("web", app_config(tmp_path / "vapid.pem"), LOOPBACK)
    try:
        yield WebPush(backend, key, Subscription(push_service.url("/push/1")))
    finally:
        await backend.close()


async def test_payload_is_encrypted_for_the_subscription_and_vapid_signed(
    webpush: WebPush, push_service: FakePushService
) -> None:
    await webpush.send({"prio": "high"})
    [request] = push_service.requests
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert request.headers["TTL"] == "900"
    assert request.headers["Urgency"] == "high"
    assert webpush.subscription.decrypt(request.body) == {
        "event_id": "$ev1",
        "room_id": "!room:a.tim.test",
        "prio": "high",
        "counts": {"unread": 1},
    }
    claims = verify_vapid(request.headers["Authorization"], webpush.vapid_key.public_key())
    assert claims["aud"] == f"http://127.0.0.1:{push_service.port}"
    assert claims["sub"] == CONTACT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600


async def test_low_priority_is_normal_urgency_and_extra_fields_pass(
    webpush: WebPush, push_service: FakePushService
) -> None:
    await webpush.send({"prio": "low", "type": "m.room.message", "sender": "@a:a.tim.test"})
    [request] = push_service.requests
    assert request.headers["Urgency"] == "normal"
    payload = webpush.subscription.decrypt(request.body)
    assert payload["type"] == "m.room.message"
    assert payload["sender"] == "@a:a.tim.test"
    assert "content" not in payload


async def test_oversized_content_is_dropped_to_fit_4096_bytes(
    webpush: WebPush, push_service: FakePushService
) -> None:
    await webpush.send({"content": {"body": "x" * 5000}, "room_name": "Praxis"})
    [request] = push_service.requests
    assert len(request.body) <= MAX_RECORD
    payload = webpush.subscription.decrypt(request.body)
    assert "content" not in payload
    assert payload["room_name"] == "Praxis"
    assert payload["event_id"] == "$ev1"


async def test_small_content_is_forwarded_when_the_homeserver_sent_it(
    webpush: WebPush, push_service: FakePushService
) -> None:
    await webpush.send({"content": {"msgtype": "m.text", "body": "hi"}})
    payload = webpush.subscription.decrypt(push_service.requests[0].body)
    assert payload["content"] == {"msgtype": "m.text", "body": "hi"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, PushkeyRejected),
        (410, PushkeyRejected),
        (400, PermanentPushError),
        (401, PermanentPushError),
        (403, PermanentPushError),
        (413, PermanentPushError),
        (301, PermanentPushError),
        (429, TemporaryPushError),
        (500, TemporaryPushError),
        (503, TemporaryPushError),
    ],
)
async def test_status_mapping(
    webpush: WebPush, push_service: FakePushService, status: int, error: type[Exception]
) -> None:
    push_service.preload("/push/1", status)
    with pytest.raises(error) as raised:
        await webpush.send()
    assert type(raised.value) is error


async def test_2xx_is_success(webpush: WebPush, push_service: FakePushService) -> None:
    push_service.preload("/push/1", 200, 202)
    await webpush.send()
    await webpush.send()
    assert len(push_service.requests) == 2


async def test_retry_after_is_passed_on(webpush: WebPush, push_service: FakePushService) -> None:
    push_service.preload("/push/1", (429, {"Retry-After": "7"}))
    with pytest.raises(TemporaryPushError) as raised:
        await webpush.send()
    assert raised.value.retry_after == 7.0


async def test_incomplete_or_invalid_subscription_is_rejected(webpush: WebPush) -> None:
    device = webpush.subscription.device()
    no_auth = device | {"data": {"endpoint": device["data"]["endpoint"]}}
    with pytest.raises(PushkeyRejected, match="incomplete"):
        await webpush.send(device=no_auth)
    with pytest.raises(PushkeyRejected, match="not valid"):
        await webpush.send(device=device | {"pushkey": "not-a-key"})


async def test_endpoint_outside_allowed_endpoints_is_permanent(tmp_path: Path) -> None:
    write_vapid_key(tmp_path / "vapid.pem")
    config = app_config(tmp_path / "vapid.pem", allowed_endpoints=["*.push.example.com"])
    backend = await WebPushBackend.create("web", config, OutboundConfig())
    sub = Subscription("https://push.example.org/push")
    try:
        with pytest.raises(EndpointNotAllowed):
            await WebPush(backend, ec.generate_private_key(ec.SECP256R1()), sub).send()
    finally:
        await backend.close()


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9/push", "push-endpoint", "ftp://a.b/c"])
async def test_endpoint_refused_by_the_guard_rejects_the_pushkey(
    tmp_path: Path, endpoint: str
) -> None:
    write_vapid_key(tmp_path / "vapid.pem")
    backend = await WebPushBackend.create(
        "web", app_config(tmp_path / "vapid.pem"), OutboundConfig()
    )
    sub = Subscription(endpoint)
    try:
        with pytest.raises(OutboundRefused):
            await WebPush(backend, ec.generate_private_key(ec.SECP256R1()), sub).send()
    finally:
        await backend.close()


async def test_vapid_token_is_reused_per_audience(
    webpush: WebPush, push_service: FakePushService
) -> None:
    await webpush.send()
    await webpush.send()
    first, second = push_service.requests
    assert first.headers["Authorization"] == second.headers["Authorization"]


async def test_missing_or_wrong_vapid_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"apps\.web\.vapid_private_key: cannot read"):
        await WebPushBackend.create("web", app_config(tmp_path / "missing.pem"), LOOPBACK)
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(ConfigError, match="not a PEM private key"):
        await WebPushBackend.create("web", app_config(tmp_path / "junk.pem"), LOOPBACK)
    assert not (tmp_path / "missing.pem").exists()
