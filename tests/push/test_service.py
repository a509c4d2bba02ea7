"""The gateway end to end in-process: notify → real backends → a fake push service."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.push.conftest import FAST, LOOPBACK, gateway, push_config
from tests.push.fakes import FakePushService, Subscription, write_vapid_key
from timkit.core.errors import ConfigError
from timkit.core.tls import LOOPBACK_NAMES, LocalPKI
from timkit.push.__main__ import main
from timkit.push.service import running


def webpush_apps(tmp_path: Path) -> dict[str, Any]:
    write_vapid_key(tmp_path / "vapid.pem")
    return {
        "web": {
            "type": "webpush",
            "vapid_private_key": str(tmp_path / "vapid.pem"),
            "vapid_contact": "mailto:ops@a.tim.test",
            "delivery": FAST,
        },
        "up": {"type": "unifiedpush", "delivery": FAST},
    }


def event(*devices: dict[str, Any], event_id: str = "$ev1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "room_id": "!room:b.tim.test",
        "prio": "high",
        "counts": {"unread": 1},
        "devices": list(devices),
    }


async def test_webpush_and_unifiedpush_delivery(
    tmp_path: Path, push_service: FakePushService
) -> None:
    sub = Subscription(push_service.url("/wp/1"))
    up = {"app_id": "up", "pushkey": push_service.url("/up/1")}
    config = push_config(apps=webpush_apps(tmp_path), outbound=LOOPBACK)
    async with gateway(config) as gw:
        response = await gw.notify(event(sub.device(), up))
    assert response.status_code == 200
    assert response.json() == {"rejected": []}
    [wp] = push_service.to("/wp/1")
    assert sub.decrypt(wp.body)["event_id"] == "$ev1"
    assert sub.decrypt(wp.body)["room_id"] == "!room:b.tim.test"
    [unified] = push_service.to("/up/1")
    assert json.loads(unified.body)["notification"]["event_id"] == "$ev1"


async def test_503_is_retried_then_delivered(tmp_path: Path, push_service: FakePushService) -> None:
    sub = Subscription(push_service.url("/wp/1"))
    push_service.preload("/wp/1", 503, 503)
    config = push_config(apps=webpush_apps(tmp_path), outbound=LOOPBACK)
    async with gateway(config) as gw:
        response = await gw.notify(event(sub.device()))
        metrics = (await gw.http.get("/metrics")).text
    assert response.status_code == 200
    assert len(push_service.to("/wp/1")) == 3
    assert sub.decrypt(push_service.requests[-1].body)["event_id"] == "$ev1"
    assert 'timkit_push_retries_total{app_id="web"} 2.0' in metrics


async def test_410_rejects_and_exhausted_retries_answer_502_until_delivered(
    tmp_path: Path, push_service: FakePushService
) -> None:
    gone = Subscription(push_service.url("/wp/gone"))
    down = Subscription(push_service.url("/wp/down"))
    fine = Subscription(push_service.url("/wp/fine"))
    push_service.preload("/wp/gone", 410)
    push_service.preload("/wp/down", 500, 502, 503)
    config = push_config(apps=webpush_apps(tmp_path), outbound=LOOPBACK)
    async with gateway(config) as gw:
        devices = (gone.device(), down.device(), fine.device())
        first = await gw.notify(event(*devices))
        assert first.status_code == 502
        assert first.json()["errcode"] == "TIMKIT_UPSTREAM"
        assert first.json()["rejected"] == [gone.p256dh]
        push_service.preload("/wp/gone", 410)
        retry = await gw.notify(event(*devices))
    assert retry.status_code == 200
    assert retry.json() == {"rejected": [gone.p256dh]}
    assert len(push_service.to("/wp/down")) == 4
    assert len(push_service.to("/wp/fine")) == 1  # de-duplicated on the retry


async def test_429_retry_after_pauses_the_unifiedpush_endpoint(
    tmp_path: Path, push_service: FakePushService
) -> None:
    push_service.preload("/up/slow", (429, {"Retry-After": "60"}))
    config = push_config(apps=webpush_apps(tmp_path), outbound=LOOPBACK)
    async with gateway(config) as gw:
        response = await gw.notify(event({"app_id": "up", "pushkey": push_service.url("/up/slow")}))
    assert response.status_code == 502
    assert len(push_service.to("/up/slow")) == 1  # the retries waited for the endpoint


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_endpoints_are_refused_and_rejected_by_default(
    tmp_path: Path, push_service: FakePushService, host: str
) -> None:
    sub = Subscription(f"http://{host}:{push_service.port}/wp/1")
    up = {"app_id": "up", "pushkey": f"http://{host}:{push_service.port}/up/1"}
    config = push_config(apps=webpush_apps(tmp_path))
    async with gateway(config) as gw:
        response = await gw.notify(event(sub.device(), up))
    assert response.status_code == 200
    # Refused for good, not retried; rejected, so the homeserver drops both pushers.
    assert response.json() == {"rejected": [sub.p256dh, up["pushkey"]]}
    assert push_service.requests == []


async def test_private_literal_is_rejected_without_a_connection(tmp_path: Path) -> None:
    config = push_config(apps=webpush_apps(tmp_path), outbound=LOOPBACK)
    async with gateway(config) as gw:
        response = await gw.notify(event({"app_id": "up", "pushkey": "http://10.1.2.3/up"}))
        metrics = (await gw.http.get("/metrics")).text
    assert response.json() == {"rejected": ["http://10.1.2.3/up"]}
    assert 'timkit_push_deliveries_total{app_id="up",outcome="rejected"} 1.0' in metrics


async def test_an_allowed_origin_is_served_and_other_loopback_ports_are_rejected(
    tmp_path: Path, push_service: FakePushService
) -> None:
    """Finding 7: exactly the allow-listed origin, not loopback at large, may be reached."""
    async with FakePushService().running() as other:  # stands in for a loopback-only service
        port = push_service.port
        allowed = push_service.url("/up/ok")
        refused = [
            other.url("/up/x"),  # another loopback port
            f"http://localhost:{port}/up/x",  # another spelling of the host
            f"http://127.1:{port}/up/x",
            f"http://[::ffff:127.0.0.1]:{port}/up/x",
            f"https://127.0.0.1:{port}/up/x",  # another scheme
        ]
        sub_ok = Subscription(push_service.url("/wp/ok"))
        sub_other = Subscription(other.url("/wp/x"))
        outbound = {"allowed_origins": [f"http://127.0.0.1:{port}"]}
        config = push_config(apps=webpush_apps(tmp_path), outbound=outbound)
        devices = [{"app_id": "up", "pushkey": key} for key in (allowed, *refused)]
        async with gateway(config) as gw:
            response = await gw.notify(event(*devices, sub_ok.device(), sub_other.device()))
        assert other.requests == []
    assert response.status_code == 200
    assert response.json() == {"rejected": [*refused, sub_other.p256dh]}
    assert sorted(r.path for r in push_service.requests) == ["/up/ok", "/wp/ok"]


@pytest.mark.parametrize(
    "pushkey",
    [
        "not a url",
        "ntfy-token-1234",
        "ftp://push.example.com/up",
        "file:///etc/passwd",
        "//push.example.com/up",
        "https:///up",
        "https://user:pw@push.example.com/up",
        "https://push.example.com/up\r\nX-Injected: 1",
        "https://push.exämple.com/up",
        "https://push.example.com:99999/up",
    ],
)
async def test_a_pushkey_that_is_not_an_http_url_is_rejected(tmp_path: Path, pushkey: str) -> None:
    """Finding 8: Synapse drops a UnifiedPush pusher whose pushkey can never be served."""
    config = push_config(apps=webpush_apps(tmp_path))
    async with gateway(config) as gw:
        response = await gw.notify(event({"app_id": "up", "pushkey": pushkey}))
    assert response.status_code == 200
    assert response.json() == {"rejected": [pushkey]}


async def test_a_webpush_endpoint_that_is_not_a_url_rejects_its_pushkey(tmp_path: Path) -> None:
    sub = Subscription("javascript:alert(1)")
    config = push_config(apps=webpush_apps(tmp_path))
    async with gateway(config) as gw:
        response = await gw.notify(event(sub.device()))
    assert response.json() == {"rejected": [sub.p256dh]}


async def test_a_malformed_allowed_origin_is_a_config_error(tmp_path: Path) -> None:
    outbound = {"allowed_origins": ["https://127.0.0.1:8429/path"]}
    with pytest.raises(ConfigError, match=r"outbound\.allowed_origins\.0"):
        async with running(push_config(apps=webpush_apps(tmp_path), outbound=outbound)):
            pass


async def test_app_type_without_backend_fails_naming_the_app(tmp_path: Path) -> None:
    apps = {
        "ios": {"type": "apns", "team_id": "T", "key_id": "K", "key_file": "/x.p8", "topic": "t"}
    }
    with pytest.raises(ConfigError, match=r"apps\.ios\.type: app 'ios': no apns backend"):
        async with running(push_config(apps=apps), registry={}):
            pass


async def test_tls_needs_both_cert_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_cert"):
        async with running(push_config(tls_cert=str(tmp_path / "c.pem"))):
            pass


async def test_serves_https_with_tls_cert(tmp_path: Path) -> None:
    pki = LocalPKI(tmp_path / "pki")
    paths = pki.ensure_server_cert("push", list(LOOPBACK_NAMES))
    config = push_config(tls_cert=str(paths.cert), tls_key=str(paths.key))
    async with running(config) as gw:
        assert gw.url.startswith("https://")
        verify = ssl.create_default_context(cafile=str(pki.ca_cert_path))
        async with httpx.AsyncClient(verify=verify) as http:
            response = await http.get(gw.url + "/health")
    assert response.json() == {"status": "ok"}


def test_main_exits_2_on_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "push.toml"
    path.write_text('[apps.x]\ntype = "carrier-pigeon"\n')
    assert main(["--config", str(path)]) == 2
    assert "apps.x" in capsys.readouterr().err
