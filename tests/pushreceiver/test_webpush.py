"""WebPush (RFC 8030/8291/8292): real pushes from pywebpush are verified, decrypted, recorded."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPusher, WebPushException, webpush_async  # type: ignore[import-untyped]

from tests.pushreceiver.conftest import Running, VapidKey
from timkit.core.errors import TimkitError
from timkit.core.jwt import b64url_decode
from timkit.pushreceiver import webpush
from timkit.pushreceiver.webpush import VapidVerifier, origin

NOTIFICATION = {
    "event_id": "$event:a.tim.test",
    "room_id": "!room:a.tim.test",
    "counts": {"unread": 2},
    "prio": "high",
}


async def _push(
    subscription: dict[str, Any], vapid: VapidKey, data: str, **kwargs: Any
) -> aiohttp.ClientResponse:
    response = await webpush_async(
        subscription,
        data,
        vapid_private_key=Vapid(vapid.private),
        vapid_claims={"sub": "mailto:push@a.tim.test"},
        **kwargs,
    )
    assert isinstance(response, aiohttp.ClientResponse)
    return response


async def test_a_pywebpush_push_is_decrypted_and_recorded(rx: Running, vapid: VapidKey) -> None:
    subscription = await rx.subscribe()
    assert subscription["endpoint"] == f"{rx.url}/wp/{subscription['id']}"
    assert set(subscription["keys"]) == {"p256dh", "auth"}
    response = await _push(
        subscription, vapid, json.dumps(NOTIFICATION), ttl=60, headers={"Urgency": "high"}
    )
    assert response.status == 201
    [push] = await rx.pushes()
    assert push["kind"] == "webpush"
    assert push["target"] == subscription["id"]
    assert push["payload"] == NOTIFICATION
    assert push["meta"] == {
        "ttl": 60,
        "urgency": "high",
        "topic": None,
        "sub": "mailto:push@a.tim.test",
    }
    assert response.headers["Location"] == f"{rx.url}/api/pushes/{push['seq']}"
    one = await rx.http.get(response.headers["Location"])
    assert one.json() == push


async def test_webpusher_send_async_with_a_session_and_a_pinned_key(
    rx: Running, vapid: VapidKey
) -> None:
    subscription = await rx.subscribe(application_server_key=vapid.public)
    claims: dict[str, str | int] = {
        "sub": "https://push.a.tim.test",
        "aud": origin(subscription["endpoint"]),
    }
    claims["exp"] = int(time.time()) + 600
    headers = Vapid(vapid.private).sign(claims)
    async with aiohttp.ClientSession() as session:
        response = await WebPusher(subscription, aiohttp_session=session).send_async(
            data="plain words, not JSON", headers={**headers, "Topic": "room1"}, ttl=0
        )
        assert isinstance(response, aiohttp.ClientResponse)
        assert response.status == 201
    [push] = await rx.pushes(target=subscription["id"])
    assert push["payload"] == {"text": "plain words, not JSON"}
    assert push["meta"]["topic"] == "room1"
    assert push["meta"]["ttl"] == 0


async def test_a_push_without_payload_is_recorded_empty(rx: Running, vapid: VapidKey) -> None:
    subscription = await rx.subscribe()
    header = vapid.header(vapid.claims(rx.url))
    response = await rx.http.post(
        subscription["endpoint"], headers={"Authorization": header, "TTL": "30"}
    )
    assert response.status_code == 201, response.text
    [push] = await rx.pushes()
    assert push["payload"] == {}


async def test_a_pinned_application_server_key_refuses_other_keys(
    rx: Running, vapid: VapidKey
) -> None:
    other = VapidKey.generate()
    subscription = await rx.subscribe(application_server_key=other.public)
    with pytest.raises(WebPushException) as refused:
        await _push(subscription, vapid, json.dumps(NOTIFICATION))
    response = refused.value.response
    assert response is not None
    assert response.status == 403
    assert "application_server_key" in refused.value.message
    assert await rx.pushes() == []
    assert (await _push(subscription, other, "{}")).status == 201


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("signed by another key", "signature is invalid"),
        ("wrong aud", "is not this push service"),
        ("aud with a path", "is not this push service"),
        ("expired", "expired"),
        ("exp more than 24 h ahead", "more than 24 hours"),
        ("no sub", "no 'sub' claim"),
        ("no exp", "no 'exp' claim"),
        ("no Authorization", "no Authorization header"),
        ("other scheme", "is not 'vapid'"),
        ("no k", "needs both t= and k="),
        ("k is no key", "not a base64url P-256 public key"),
    ],
)
async def test_bad_vapid_is_refused_with_401_and_nothing_recorded(
    rx: Running, vapid: VapidKey, case: str, reason: str
) -> None:
    subscription = await rx.subscribe()
    now = int(time.time())
    headers = {
        "signed by another key": vapid.header(vapid.claims(rx.url), k=VapidKey.generate().public),
        "wrong aud": vapid.header(vapid.claims("https://push.example.com")),
        "aud with a path": vapid.header(vapid.claims(rx.url + "/wp")),
        "expired": vapid.header(vapid.claims(rx.url, exp=now - 5)),
        "exp more than 24 h ahead": vapid.header(vapid.claims(rx.url, exp=now + 25 * 3600)),
        "no sub": vapid.header(vapid.claims(rx.url, sub=None)),
        "no exp": vapid.header(vapid.claims(rx.url, exp=None)),
        "no Authorization": "",
        "other scheme": "WebPush " + vapid.header(vapid.claims(rx.url)).split(" ", 1)[1],
        "no k": vapid.header(vapid.claims(rx.url)).split(",")[0],
        "k is no key": vapid.header(vapid.claims(rx.url), k="bm9wZQ"),
    }
    request_headers = {"TTL": "60", "Content-Encoding": "aes128gcm"}
    if headers[case]:
        request_headers["Authorization"] = headers[case]
    response = await rx.http.post(subscription["endpoint"], headers=request_headers, content=b"x")
    assert response.status_code == 401, response.text
    assert reason in response.json()["error"]
    assert await rx.pushes() == []


async def test_an_unsubscribed_endpoint_is_gone_and_an_unknown_one_not_found(
    rx: Running, vapid: VapidKey
) -> None:
    subscription = await rx.subscribe()
    url = f"{rx.url}/api/webpush/subscriptions/{subscription['id']}"
    assert (await rx.http.delete(url)).status_code == 200
    assert (await rx.http.delete(url)).status_code == 404
    with pytest.raises(WebPushException) as gone:
        await _push(subscription, vapid, "{}")
    assert gone.value.response is not None
    assert gone.value.response.status == 410
    unknown = {**subscription, "endpoint": f"{rx.url}/wp/nope"}
    with pytest.raises(WebPushException) as missing:
        await _push(unknown, vapid, "{}")
    assert missing.value.response is not None
    assert missing.value.response.status == 404
    assert await rx.pushes() == []


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({"Content-Encoding": "aesgcm"}, b"x" * 100, 415, "is not aes128gcm"),
        ({"TTL": ""}, b"x" * 100, 400, "TTL header"),
        ({"Urgency": "urgent"}, b"x" * 100, 400, "Urgency"),
        ({"Topic": "t" * 33}, b"x" * 100, 400, "Topic"),
        ({}, b"x" * 100, 400, "does not decrypt"),
        ({}, b"x" * 4097, 413, "larger than 4096 bytes"),
    ],
)
async def test_malformed_pushes_are_refused(
    rx: Running, vapid: VapidKey, headers: dict[str, str], body: bytes, status: int, reason: str
) -> None:
    subscription = await rx.subscribe()
    base = {
        "Authorization": vapid.header(vapid.claims(rx.url)),
        "TTL": "60",
        "Content-Encoding": "aes128gcm",
    }
    request_headers = {k: v for k, v in {**base, **headers}.items() if v}
    response = await rx.http.post(subscription["endpoint"], headers=request_headers, content=body)
    assert response.status_code == status, response.text
    assert reason in response.json()["error"]
    assert await rx.pushes() == []


async def test_subscribing_with_a_bad_application_server_key_is_a_400(rx: Running) -> None:
    url = rx.url + "/api/webpush/subscriptions"
    bad = await rx.http.post(url, json={"application_server_key": "bm9wZQ"})
    assert bad.status_code == 400
    assert "application_server_key" in bad.json()["error"]
    unknown = await rx.http.post(url, json={"key": "x"})
    assert unknown.status_code == 400
    assert unknown.json()["errcode"] == "M_BAD_JSON"
    not_json = await rx.http.post(url, content=b"[1]")
    assert not_json.json()["errcode"] == "M_NOT_JSON"


def test_origin_drops_paths_and_default_ports() -> None:
    assert origin("https://Push.Example:443/wp/x") == "https://push.example"
    assert origin("http://127.0.0.1:8429/wp/x") == "http://127.0.0.1:8429"
    assert origin("http://[::1]:80/") == "http://[::1]"


def test_a_remembered_vapid_token_is_still_checked_for_expiry_audience_and_pinned_key(
    vapid: VapidKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    audience = "https://push.example.com"
    exp = int(time.time()) + 600
    header = vapid.header(vapid.claims(audience, exp=exp))
    verifier = VapidVerifier()
    signature_checks: list[str] = []
    real = webpush._verify_signature

    def counting(token: str, k: str) -> tuple[bytes, dict[str, Any]]:
        signature_checks.append(token)
        return real(token, k)

    monkeypatch.setattr(webpush, "_verify_signature", counting)
    assert verifier.verify(header, audience, None)["aud"] == audience
    assert verifier.verify(header, audience, None)["exp"] == exp
    assert len(signature_checks) == 1  # the ES256 check ran once for the reused token
    with pytest.raises(TimkitError, match="aud") as wrong_aud:
        verifier.verify(header, "https://other.example.com", None)
    assert wrong_aud.value.status == 401
    with pytest.raises(TimkitError, match="application_server_key") as pinned:
        verifier.verify(header, audience, b64url_decode(VapidKey.generate().public))
    assert pinned.value.status == 403
    with pytest.raises(TimkitError, match="exp") as expired:
        verifier.verify(header, audience, None, now=exp + 1)
    assert expired.value.status == 401
    assert len(signature_checks) == 1
