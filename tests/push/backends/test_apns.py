"""The APNs backend against the receiver's APNs stand-in (HTTP/2 over TLS), and its mapping."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.pushkeys import (
    DEVICE_TOKEN,
    KEY_ID,
    TEAM_ID,
    TOPIC,
    rsa_pem,
    server_tls,
    write_p8,
)
from timkit.core import jwt
from timkit.core.config import parse_config
from timkit.core.errors import ConfigError
from timkit.core.tls import client_ssl_context
from timkit.push.backends.apns import (
    TOKEN_REUSE,
    ApnsBackend,
    ProviderToken,
    apns_outcome,
    apns_payload,
    device_token_hex,
    load_signing_key,
)
from timkit.push.backends.base import PermanentPushError, PushkeyRejected, TemporaryPushError
from timkit.push.config import ApnsApp, OutboundConfig
from timkit.push.notify_request import Device, Notification
from timkit.pushreceiver.apns import running_apns
from timkit.pushreceiver.config import ApnsServerConfig
from timkit.pushreceiver.faults import FaultRequest, Faults
from timkit.pushreceiver.inbox import Inbox


def notification(pushkey: str = DEVICE_TOKEN, **fields: Any) -> Notification:
    body = {
        "event_id": "$event:a.tim.test",
        "room_id": "!room:a.tim.test",
        "counts": {"unread": 2},
        "devices": [{"app_id": "app", "pushkey": pushkey}],
        **fields,
    }
    return Notification.model_validate(body)


def device(n: Notification) -> Device:
    return n.devices[0]


@dataclass
class Stack:
    inbox: Inbox
    faults: Faults
    app: ApnsApp
    url: str

    async def backend(self, **changes: Any) -> ApnsBackend:
        return await ApnsBackend.create(
            "app", self.app.model_copy(update=changes), OutboundConfig()
        )


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The APNs stand-in on a free TLS port, and an app config it accepts."""
    tls, ca = server_tls(tmp_path)
    p8 = write_p8(tmp_path / "AuthKey.p8")
    config = parse_config(
        ApnsServerConfig,
        {"port": 0, "team_id": TEAM_ID, "keys": {KEY_ID: str(p8)}, "topics": [TOPIC]},
    )
    inbox, faults = Inbox(), Faults()
    async with running_apns(config, inbox, tls.cert, tls.key, faults=faults) as port:
        url = f"https://127.0.0.1:{port}"
        app = parse_config(
            ApnsApp,
            {
                "type": "apns",
                "team_id": TEAM_ID,
                "key_id": KEY_ID,
                "key_file": str(p8),
                "topic": TOPIC,
                "endpoint": url,
                "ca_file": str(ca),
                "delivery": {"timeout": 5.0},
            },
        )
        yield Stack(inbox, faults, app, url)


@pytest.fixture
async def backend(stack: Stack) -> AsyncIterator[ApnsBackend]:
    backend = await stack.backend()
    yield backend
    await backend.close()


async def test_delivers_an_event_id_only_alert_over_http2(
    stack: Stack, backend: ApnsBackend
) -> None:
    n = notification(counts={"unread": 2, "missed_calls": 1})
    await backend.send(n, device(n))
    [item] = stack.inbox.since(0)
    assert (item.kind, item.target) == ("apns", DEVICE_TOKEN)
    assert item.payload == {
        "aps": {"alert": {"loc-key": "Notification"}, "mutable-content": 1, "badge": 2},
        "event_id": "$event:a.tim.test",
        "room_id": "!room:a.tim.test",
        "unread_count": 2,
        "missed_calls": 1,
    }
    assert item.meta["apns-priority"] == 10
    assert item.meta["apns-push-type"] == "alert"


async def test_low_priority_and_badge_only(stack: Stack, backend: ApnsBackend) -> None:
    low = notification(prio="low")
    badge = notification(event_id=None, room_id=None, counts={"unread": 0})
    await backend.send(low, device(low))
    await backend.send(badge, device(badge))
    first, second = stack.inbox.since(0)
    assert first.meta["apns-priority"] == 5
    assert second.payload == {"aps": {"badge": 0}, "unread_count": 0}
    assert second.meta["apns-push-type"] == "alert"


async def test_base64_pushkeys_are_sent_as_hex(stack: Stack, backend: ApnsBackend) -> None:
    n = notification(base64.b64encode(bytes.fromhex(DEVICE_TOKEN)).decode())
    await backend.send(n, device(n))
    assert stack.inbox.since(0)[0].target == DEVICE_TOKEN


async def test_gone_and_malformed_device_tokens_are_rejected(
    stack: Stack, backend: ApnsBackend
) -> None:
    async with httpx.AsyncClient(
        http2=True, verify=client_ssl_context(stack.app.ca_file or Path())
    ) as http:
        await http.post(stack.url + "/apns/unregister", json={"token": DEVICE_TOKEN})
    n = notification()
    with pytest.raises(PushkeyRejected, match="410 Unregistered"):
        await backend.send(n, device(n))
    short = notification("abcd" * 8)  # hex, but 16 bytes: APNs says BadDeviceToken
    with pytest.raises(PushkeyRejected, match="BadDeviceToken"):
        await backend.send(short, device(short))
    garbage = notification("not a device token!")
    with pytest.raises(PushkeyRejected, match="not a hex or base64"):
        await backend.send(garbage, device(garbage))
    assert stack.inbox.since(0) == []


async def test_an_expired_provider_token_is_renewed(stack: Stack) -> None:
    clock = [time.time() - 2 * 3600]  # the backend's first token is two hours old
    key = load_signing_key(stack.app.key_file)
    token = ProviderToken(key, KEY_ID, TEAM_ID, clock=lambda: clock[0])
    client = httpx.AsyncClient(http2=True, verify=client_ssl_context(stack.app.ca_file or Path()))
    backend = ApnsBackend("app", stack.app, token, client)
    n = notification()
    with pytest.raises(TemporaryPushError, match="ExpiredProviderToken"):
        await backend.send(n, device(n))
    clock[0] = time.time()
    await backend.send(n, device(n))  # the dispatcher's retry: a new token
    assert len(stack.inbox.since(0)) == 1
    await backend.close()


@pytest.mark.parametrize(
    ("changes", "outcome", "reason"),
    [
        ({"topic": "com.example.other"}, PermanentPushError, "TopicDisallowed"),
        ({"key_id": "OTHERKEY99"}, PermanentPushError, "InvalidProviderToken"),
        ({"team_id": "OTHERTEAM1"}, PermanentPushError, "InvalidProviderToken"),
        ({"endpoint": "https://127.0.0.1:1"}, TemporaryPushError, "unreachable"),
    ],
)
async def test_misconfiguration_is_not_the_devices_fault(
    stack: Stack, changes: dict[str, Any], outcome: type[Exception], reason: str
) -> None:
    backend = await stack.backend(**changes)
    n = notification()
    with pytest.raises(outcome, match=reason):
        await backend.send(n, device(n))
    await backend.close()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (503, TemporaryPushError),
        (500, TemporaryPushError),
        (429, TemporaryPushError),
        (410, PushkeyRejected),
        (413, PermanentPushError),
        (403, PermanentPushError),
    ],
)
async def test_service_errors_map_to_outcomes(
    stack: Stack, backend: ApnsBackend, status: int, outcome: type[Exception]
) -> None:
    stack.faults.arm(FaultRequest(target=DEVICE_TOKEN, status=status))
    n = notification()
    with pytest.raises(outcome):
        await backend.send(n, device(n))


def test_provider_tokens_are_reused_for_50_minutes(tmp_path: Path) -> None:
    key = load_signing_key(write_p8(tmp_path / "k.p8"))
    now = [1_800_000_000.0]
    tokens = ProviderToken(key, KEY_ID, TEAM_ID, clock=lambda: now[0])
    first = tokens.current()
    assert jwt.header_of(first) == {"alg": "ES256", "kid": KEY_ID}
    claims = orjson.loads(jwt.verify_signature(first, key, ["ES256"]))
    assert claims == {"iss": TEAM_ID, "iat": 1_800_000_000}
    now[0] += TOKEN_REUSE - 1
    assert tokens.current() == first
    now[0] += 1
    second = tokens.current()
    assert second != first
    tokens.expire(first)  # already replaced: no effect
    assert tokens.current() == second
    now[0] += 1
    tokens.expire(second)
    assert tokens.current() not in (first, second)


@pytest.mark.parametrize(
    ("status", "reason", "outcome"),
    [
        (410, "ExpiredToken", PushkeyRejected),
        (400, "DeviceTokenNotForTopic", PushkeyRejected),
        (400, "BadDeviceToken", PushkeyRejected),
        (400, "BadTopic", PermanentPushError),
        (403, "ExpiredProviderToken", TemporaryPushError),
        (403, "InvalidProviderToken", PermanentPushError),
        (429, "TooManyProviderTokenUpdates", TemporaryPushError),
        (503, "Shutdown", TemporaryPushError),
        (404, "BadPath", PermanentPushError),
    ],
)
def test_apns_outcome(status: int, reason: str, outcome: type[Exception]) -> None:
    assert type(apns_outcome(status, reason)) is outcome


def test_device_tokens() -> None:
    assert device_token_hex("AB" * 32) == "ab" * 32
    assert device_token_hex(base64.b64encode(b"\x01" * 32).decode()) == "01" * 32
    for bad in ("xyz", "abc", "!!" * 32, base64.b64encode(b"1234").decode()):
        with pytest.raises(PushkeyRejected):
            device_token_hex(bad)


def test_a_payload_with_nothing_to_show_is_a_background_push() -> None:
    n = notification(event_id=None, counts={})
    assert apns_payload(n) == (
        {"aps": {"content-available": 1}, "room_id": "!room:a.tim.test"},
        "background",
        "5",
    )


def test_signing_keys_must_be_ec_p256(tmp_path: Path) -> None:
    rsa = tmp_path / "rsa.p8"
    rsa.write_text(rsa_pem())
    for path in (rsa, tmp_path / "missing.p8"):
        with pytest.raises(ConfigError):
            load_signing_key(path)
    (tmp_path / "junk.p8").write_text("junk")
    with pytest.raises(ConfigError):
        load_signing_key(tmp_path / "junk.p8")
