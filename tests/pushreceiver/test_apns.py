"""The APNs stand-in: HTTP/2 over TLS, provider tokens, Apple's reasons for refusals."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk

from tests.support.pushkeys import DEVICE_TOKEN, KEY_ID, TEAM_ID, TOPIC, server_tls, write_p8
from timkit.core import jwt
from timkit.core.config import parse_config
from timkit.core.tls import client_ssl_context
from timkit.pushreceiver.apns import running_apns
from timkit.pushreceiver.config import ApnsServerConfig
from timkit.pushreceiver.faults import FaultRequest, Faults
from timkit.pushreceiver.inbox import Inbox

BODY = {"aps": {"alert": {"loc-key": "Notification"}, "mutable-content": 1}, "event_id": "$e"}


@dataclass
class Apns:
    url: str
    key: jwk.JWK
    inbox: Inbox
    faults: Faults
    http: httpx.AsyncClient
    ca: Path

    def token(self, *, key: jwk.JWK | None = None, kid: str = KEY_ID, **claims: Any) -> str:
        body = {"iss": TEAM_ID, "iat": int(time.time()), **claims}
        return jwt.sign(body, key or self.key, typ=None, kid=kid)

    async def push(
        self,
        device: str = DEVICE_TOKEN,
        body: Any = BODY,
        *,
        token: str | None = None,
        drop: tuple[str, ...] = (),
        **headers: str,
    ) -> httpx.Response:
        sent = {
            "authorization": f"bearer {token or self.token()}",
            "apns-topic": TOPIC,
            "apns-push-type": "alert",
            "apns-priority": "10",
            **{k.replace("_", "-"): v for k, v in headers.items()},
        }
        for name in drop:
            del sent[name]
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.http.post(f"{self.url}/3/device/{device}", content=content, headers=sent)


@pytest.fixture
async def apns(tmp_path: Path) -> AsyncIterator[Apns]:
    """The stand-in on a free TLS port, accepting :data:`TOPIC` from team :data:`TEAM_ID`."""
    tls, ca = server_tls(tmp_path)
    p8 = write_p8(tmp_path / "AuthKey.p8")
    config = parse_config(
        ApnsServerConfig,
        {"port": 0, "team_id": TEAM_ID, "keys": {KEY_ID: str(p8)}, "topics": [TOPIC]},
    )
    inbox, faults = Inbox(), Faults()
    async with (
        running_apns(config, inbox, tls.cert, tls.key, faults=faults) as port,
        httpx.AsyncClient(http2=True, verify=client_ssl_context(ca), timeout=10) as http,
    ):
        key = jwt.key_from_pem(p8.read_bytes())
        yield Apns(f"https://127.0.0.1:{port}", key, inbox, faults, http, ca)


async def test_a_valid_notification_is_recorded_over_http2(apns: Apns) -> None:
    response = await apns.push(apns_priority="5", apns_id="123e4567-e89b-12d3-a456-426614174000")
    assert response.status_code == 200, response.text
    assert response.http_version == "HTTP/2"
    assert response.headers["apns-id"] == "123e4567-e89b-12d3-a456-426614174000"
    [item] = apns.inbox.since(0)
    assert (item.kind, item.target, item.payload) == ("apns", DEVICE_TOKEN, BODY)
    assert item.meta["apns-priority"] == 5
    assert item.meta["apns-push-type"] == "alert"
    assert item.meta["apns-topic"] == TOPIC


async def test_an_apns_id_is_made_up_when_none_is_sent(apns: Apns) -> None:
    response = await apns.push()
    assert response.status_code == 200
    assert len(response.headers["apns-id"]) == 36


async def test_http1_clients_are_turned_away(apns: Apns) -> None:
    async with httpx.AsyncClient(verify=client_ssl_context(apns.ca), timeout=10) as http1:
        response = await http1.post(
            f"{apns.url}/3/device/{DEVICE_TOKEN}",
            content=b"{}",
            headers={"authorization": f"bearer {apns.token()}", "apns-topic": TOPIC},
        )
    assert response.http_version == "HTTP/1.1"
    assert response.status_code == 400
    assert response.json() == {"reason": "HTTP2Required"}
    assert apns.inbox.since(0) == []


def _fresh() -> jwk.JWK:
    """An EC P-256 key APNs does not know."""
    pem = jwt.generate_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jwt.key_from_pem(pem)


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        ("", 403, "MissingProviderToken"),
        ("garbage", 403, "InvalidProviderToken"),
        ("other-key", 403, "InvalidProviderToken"),
        ("unknown-kid", 403, "InvalidProviderToken"),
        ("other-team", 403, "InvalidProviderToken"),
        ("no-iat", 403, "InvalidProviderToken"),
        ("old", 403, "ExpiredProviderToken"),
        ("future", 403, "InvalidProviderToken"),
    ],
)
async def test_provider_tokens_are_checked(
    apns: Apns, token: str, status: int, reason: str
) -> None:
    now = int(time.time())
    tokens = {
        "": "",
        "garbage": "not-a-jwt",
        "other-key": apns.token(key=_fresh()),
        "unknown-kid": apns.token(kid="OTHERKEY99"),
        "other-team": apns.token(iss="OTHERTEAM1"),
        "no-iat": jwt.sign({"iss": TEAM_ID}, apns.key, typ=None, kid=KEY_ID),
        "old": apns.token(iat=now - 3700),
        "future": apns.token(iat=now + 3600),
    }
    if token == "":
        response = await apns.push(drop=("authorization",))
    else:
        response = await apns.push(token=tokens[token])
    assert (response.status_code, response.json()) == (status, {"reason": reason})
    assert apns.inbox.since(0) == []


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"drop": ("apns-topic",)}, 400, "MissingTopic"),
        ({"apns_topic": "com.example.other"}, 400, "TopicDisallowed"),
        ({"device": "ab" * 31}, 400, "BadDeviceToken"),
        ({"device": "zz" * 32}, 400, "BadDeviceToken"),
        ({"device": ""}, 400, "MissingDeviceToken"),
        ({"apns_push_type": "shout"}, 400, "InvalidPushType"),
        ({"apns_priority": "7"}, 400, "BadPriority"),
        ({"apns_expiration": "tomorrow"}, 400, "BadExpirationDate"),
        ({"apns_collapse_id": "x" * 65}, 400, "BadCollapseId"),
        ({"apns_id": "not-a-uuid"}, 400, "BadMessageId"),
        ({"body": b""}, 400, "PayloadEmpty"),
        ({"body": b"[1, 2]"}, 400, "BadPayload"),
        ({"body": {"aps": {}, "pad": "x" * 5000}}, 413, "PayloadTooLarge"),
    ],
)
async def test_bad_requests_get_apples_reasons(
    apns: Apns, kwargs: dict[str, Any], status: int, reason: str
) -> None:
    response = await apns.push(**kwargs)
    assert (response.status_code, response.json()) == (status, {"reason": reason})
    assert apns.inbox.since(0) == []


async def test_paths_and_methods(apns: Apns) -> None:
    assert (await apns.http.post(f"{apns.url}/3/other")).json() == {"reason": "BadPath"}
    wrong = await apns.http.get(f"{apns.url}/3/device/{DEVICE_TOKEN}")
    assert (wrong.status_code, wrong.json()) == (405, {"reason": "MethodNotAllowed"})


async def test_unregistered_tokens_answer_410_with_a_timestamp(apns: Apns) -> None:
    before = int(time.time() * 1000)
    marked = await apns.http.post(f"{apns.url}/apns/unregister", json={"token": DEVICE_TOKEN})
    assert marked.status_code == 200
    response = await apns.push()
    assert response.status_code == 410
    assert response.json()["reason"] == "Unregistered"
    assert response.json()["timestamp"] >= before
    assert apns.inbox.since(0) == []


async def test_injected_faults_carry_apples_reason(apns: Apns) -> None:
    apns.faults.arm(FaultRequest(target=DEVICE_TOKEN, status=503, count=1))
    response = await apns.push()
    assert (response.status_code, response.json()) == (503, {"reason": "ServiceUnavailable"})
    assert (await apns.push()).status_code == 200
