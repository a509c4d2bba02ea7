"""The FCM HTTP v1 backend against the receiver's FCM stand-in over TLS, and its error mapping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.support.pushkeys import server_tls, write_service_account
from timkit.core.config import parse_config
from timkit.core.errors import ConfigError
from timkit.core.tls import server_ssl_context
from timkit.core.web import running_app
from timkit.push.backends.base import PermanentPushError, PushkeyRejected, TemporaryPushError
from timkit.push.backends.fcm import (
    AccessTokens,
    FcmBackend,
    ServiceAccount,
    fcm_message,
    raise_for_fcm,
    retry_after,
)
from timkit.push.config import FcmApp, OutboundConfig
from timkit.push.notify_request import Device, Notification
from timkit.pushreceiver.config import FcmServerConfig
from timkit.pushreceiver.faults import FaultRequest, Faults
from timkit.pushreceiver.fcm import FcmServer
from timkit.pushreceiver.inbox import Inbox

PROJECT = "timkit-test"
REG_TOKEN = "dK3x9F2mQ8:APA91bHPRtest_token-0123456789"


def notification(pushkey: str = REG_TOKEN, **fields: Any) -> Notification:
    body = {
        "event_id": "$event:a.tim.test",
        "room_id": "!room:a.tim.test",
        "counts": {"unread": 3},
        "devices": [{"app_id": "app", "pushkey": pushkey}],
        **fields,
    }
    return Notification.model_validate(body)


def device(n: Notification) -> Device:
    return n.devices[0]


@dataclass
class Stack:
    server: FcmServer
    url: str
    app: FcmApp

    async def backend(self, **changes: Any) -> FcmBackend:
        return await FcmBackend.create("app", self.app.model_copy(update=changes), OutboundConfig())


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The FCM stand-in on TLS, and an app config whose service account it knows."""
    tls, ca = server_tls(tmp_path)
    path = tmp_path / "sa.json"
    account = write_service_account(path, "https://placeholder/token")
    config = parse_config(
        FcmServerConfig, {"project_id": PROJECT, "service_account_files": [str(path)]}
    )
    server = FcmServer(config, Inbox(), faults=Faults())
    app = web.Application()
    app.add_routes(server.routes())
    async with running_app(app, "127.0.0.1", 0, server_ssl_context(tls)) as runner:
        url = f"https://127.0.0.1:{runner.addresses[0][1]}"
        path.write_bytes(orjson.dumps({**account, "token_uri": url + "/token"}))
        fcm = parse_config(
            FcmApp,
            {
                "type": "fcm",
                "project_id": PROJECT,
                "service_account_file": str(path),
                "endpoint": url,
                "ca_file": str(ca),
                "delivery": {"timeout": 5.0},
            },
        )
        yield Stack(server, url, fcm)


@pytest.fixture
async def backend(stack: Stack) -> AsyncIterator[FcmBackend]:
    backend = await stack.backend()
    yield backend
    await backend.close()


async def test_delivers_ids_as_string_data_with_one_access_token(
    stack: Stack, backend: FcmBackend
) -> None:
    n = notification(counts={"unread": 3, "missed_calls": 1})
    await backend.send(n, device(n))
    await backend.send(n, device(n))
    first, _ = stack.server.inbox.since(0)
    assert first.kind == "fcm"
    assert first.target == REG_TOKEN
    assert first.payload == {
        "event_id": "$event:a.tim.test",
        "room_id": "!room:a.tim.test",
        "prio": "high",
        "unread": "3",
        "missed_calls": "1",
    }
    assert first.meta["priority"] == "HIGH"
    assert stack.server.issued == 1


async def test_concurrent_sends_share_one_token_request(stack: Stack, backend: FcmBackend) -> None:
    n = notification()
    await asyncio.gather(*(backend.send(n, device(n)) for _ in range(20)))
    assert len(stack.server.inbox.since(0)) == 20
    assert stack.server.issued == 1


async def test_a_refused_access_token_is_replaced_once(stack: Stack, backend: FcmBackend) -> None:
    n = notification()
    await backend.send(n, device(n))
    stack.server.revoke_tokens()
    await backend.send(n, device(n))
    assert stack.server.issued == 2
    assert len(stack.server.inbox.since(0)) == 2


async def test_unregistered_and_malformed_tokens_are_rejected(
    stack: Stack, backend: FcmBackend
) -> None:
    stack.server.unregistered.add(REG_TOKEN)
    n = notification()
    with pytest.raises(PushkeyRejected, match="UNREGISTERED"):
        await backend.send(n, device(n))
    bad = notification("not a token")
    with pytest.raises(PushkeyRejected, match="INVALID_ARGUMENT"):
        await backend.send(bad, device(bad))
    assert stack.server.inbox.since(0) == []


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (503, TemporaryPushError),
        (500, TemporaryPushError),
        (429, TemporaryPushError),
        (403, PushkeyRejected),  # SENDER_ID_MISMATCH
        (404, PushkeyRejected),  # UNREGISTERED
        (400, PermanentPushError),  # INVALID_ARGUMENT, not about the token
    ],
)
async def test_service_errors_map_to_outcomes(
    stack: Stack, backend: FcmBackend, status: int, outcome: type[Exception]
) -> None:
    stack.server.faults.arm(FaultRequest(target=REG_TOKEN, status=status, retry_after=9))
    n = notification()
    with pytest.raises(outcome) as raised:
        await backend.send(n, device(n))
    if isinstance(raised.value, TemporaryPushError):
        assert raised.value.retry_after == 9


async def test_a_wrong_project_is_permanent(stack: Stack) -> None:
    backend = await stack.backend(project_id="someone-else")
    n = notification()
    with pytest.raises(PermanentPushError, match="403"):
        await backend.send(n, device(n))
    await backend.close()


async def test_a_service_account_the_token_endpoint_refuses_is_permanent(
    stack: Stack, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.json"
    write_service_account(stranger, stack.url + "/token", email="x@y.iam.gserviceaccount.com")
    backend = await stack.backend(service_account_file=stranger)
    n = notification()
    with pytest.raises(PermanentPushError, match="invalid_client"):
        await backend.send(n, device(n))
    await backend.close()


async def test_an_unreachable_service_is_temporary(stack: Stack) -> None:
    backend = await stack.backend(endpoint="https://127.0.0.1:1")
    n = notification()
    with pytest.raises(TemporaryPushError, match="unreachable"):
        await backend.send(n, device(n))
    await backend.close()


async def test_access_tokens_are_refreshed_shortly_before_they_expire(tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    write_service_account(path, "https://oauth.test/token")
    grants: list[dict[str, str]] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        grants.append(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(200, json={"access_token": f"t{len(grants)}", "expires_in": 3600})

    now = [1_800_000_000.0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(token_endpoint)) as client:
        tokens = AccessTokens(ServiceAccount.load(path), client, clock=lambda: now[0])
        assert await tokens.get() == "t1"
        now[0] += 3299
        assert await tokens.get() == "t1"
        now[0] += 1  # 300 s before expiry
        assert await tokens.get() == "t2"
        tokens.invalidate("t1")  # already replaced: no effect
        assert await tokens.get() == "t2"
        tokens.invalidate("t2")
        assert await tokens.get() == "t3"
    assert grants[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert grants[0]["assertion"].count(".") == 2


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, {"name": "projects/p/messages/1"}, None),
        (404, {}, PermanentPushError),  # a 404 without UNREGISTERED: wrong endpoint, keep key
        (
            400,
            {
                "error": {
                    "code": 400,
                    "status": "INVALID_ARGUMENT",
                    "message": "The registration token is not a valid FCM registration token",
                }
            },
            PushkeyRejected,
        ),
        (401, {"error": {"status": "UNAUTHENTICATED"}}, PermanentPushError),
        (413, {}, PermanentPushError),
        (502, {}, TemporaryPushError),
        (
            400,
            {
                "error": {
                    "status": "UNAVAILABLE",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                            "errorCode": "UNAVAILABLE",
                        }
                    ],
                }
            },
            TemporaryPushError,
        ),
    ],
)
def test_raise_for_fcm(status: int, body: dict[str, Any], outcome: type[Exception] | None) -> None:
    response = httpx.Response(status, json=body)
    if outcome is None:
        raise_for_fcm(response)
    else:
        with pytest.raises(outcome):
            raise_for_fcm(response)


def test_retry_after_as_seconds_or_date() -> None:
    assert retry_after(httpx.Response(503, headers={"Retry-After": "30"})) == 30
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    delay = retry_after(httpx.Response(503, headers={"Retry-After": soon}))
    assert delay is not None
    assert 55 <= delay <= 61
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(503)) is None


def test_low_priority_messages_are_normal() -> None:
    n = notification(prio="low", event_id=None, counts={})
    assert fcm_message(n, device(n)) == {
        "message": {
            "token": REG_TOKEN,
            "data": {"room_id": "!room:a.tim.test", "prio": "low"},
            "android": {"priority": "NORMAL"},
        }
    }


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"client_email": "a@b"}',
        b'{"client_email": "a", "private_key": "x", "token_uri": "https://t"}',
    ],
)
def test_unusable_service_accounts_are_config_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sa.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError):
        ServiceAccount.load(path)
    with pytest.raises(ConfigError):
        ServiceAccount.load(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("error", "outcome", "grants"),
    [
        ({"status": "UNAUTHENTICATED"}, TemporaryPushError, 2),
        (
            {
                "status": "UNAUTHENTICATED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                        "errorCode": "THIRD_PARTY_AUTH_ERROR",
                    }
                ],
            },
            PermanentPushError,
            1,
        ),
    ],
)
async def test_401_refreshes_the_access_token_unless_third_party_auth_failed(
    stack: Stack, error: dict[str, Any], outcome: type[Exception], grants: int
) -> None:
    calls: list[str] = []

    def fcm(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(401, json={"error": {"code": 401, **error}})

    account = ServiceAccount.load(stack.app.service_account_file)
    client = httpx.AsyncClient(transport=httpx.MockTransport(fcm))
    backend = FcmBackend("app", stack.app, account, client)
    n = notification()
    with pytest.raises(outcome):
        await backend.send(n, device(n))
    await backend.close()
    assert calls.count("/token") == grants
    assert len(calls) == 2 * grants
