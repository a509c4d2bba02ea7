"""The FCM HTTP v1 stand-in: the JWT bearer grant and ``messages:send`` as Google answers them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.support.pushkeys import assertion, rsa_pem, server_tls, write_service_account
from timkit.core.config import parse_config
from timkit.core.tls import client_ssl_context, server_ssl_context
from timkit.core.web import running_app
from timkit.pushreceiver.config import FcmServerConfig
from timkit.pushreceiver.faults import FaultRequest, Faults
from timkit.pushreceiver.fcm import FcmServer, fcm_routes
from timkit.pushreceiver.inbox import Inbox

PROJECT = "timkit-test"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REG_TOKEN = "dK3x9F2mQ8:APA91bHPRtest_token-0123456789"


@dataclass
class Fcm:
    server: FcmServer
    url: str
    account: dict[str, Any]
    http: httpx.AsyncClient
    now: list[float]

    async def grant(self, token: str) -> httpx.Response:
        return await self.http.post(
            self.url + "/token", data={"grant_type": JWT_BEARER, "assertion": token}
        )

    async def access_token(self) -> str:
        response = await self.grant(assertion(self.account))
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def send(
        self, message: Any, *, token: str | None = None, project: str = PROJECT
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(
            f"{self.url}/v1/projects/{project}/messages:send",
            json={"message": message},
            headers=headers,
        )


@pytest.fixture
async def fcm(tmp_path: Path) -> AsyncIterator[Fcm]:
    """The stand-in on a TLS port with one service account; its clock is ``now[0]``."""
    tls, ca = server_tls(tmp_path)
    path = tmp_path / "sa.json"
    account = write_service_account(path, "https://placeholder/token")
    config = parse_config(
        FcmServerConfig, {"project_id": PROJECT, "service_account_files": [str(path)]}
    )
    now = [time.time()]
    server = FcmServer(config, Inbox(), faults=Faults(), clock=lambda: now[0])
    app = web.Application()
    app.add_routes(server.routes())
    async with (
        running_app(app, "127.0.0.1", 0, server_ssl_context(tls)) as runner,
        httpx.AsyncClient(verify=client_ssl_context(ca), timeout=10) as http,
    ):
        url = f"https://127.0.0.1:{runner.addresses[0][1]}"
        account["token_uri"] = url + "/token"
        yield Fcm(server, url, account, http, now)


def _google(response: httpx.Response) -> tuple[int, str, str | None]:
    """(code, status, FcmError errorCode) of a Google error body."""
    error = response.json()["error"]
    codes = [d["errorCode"] for d in error.get("details", []) if "errorCode" in d]
    return error["code"], error["status"], codes[0] if codes else None


async def test_grant_then_send_records_the_message(fcm: Fcm) -> None:
    response = await fcm.grant(assertion(fcm.account))
    assert response.status_code == 200
    grant = response.json()
    assert grant["token_type"] == "Bearer"
    assert grant["expires_in"] == 3600
    message = {
        "token": REG_TOKEN,
        "data": {"event_id": "$e", "room_id": "!r:a.tim.test", "unread": "2"},
        "android": {"priority": "HIGH"},
    }
    sent = await fcm.send(message, token=grant["access_token"])
    assert sent.status_code == 200, sent.text
    assert sent.json()["name"].startswith(f"projects/{PROJECT}/messages/")
    [item] = fcm.server.inbox.since(0)
    assert (item.kind, item.target, item.payload) == ("fcm", REG_TOKEN, message["data"])
    assert item.meta["priority"] == "HIGH"
    assert fcm.server.attempts.of(REG_TOKEN)["statuses"] == [200]


async def test_audience_is_compared_by_path_only(fcm: Fcm) -> None:
    other_host = assertion(fcm.account, aud="https://push.example:9999/token")
    assert (await fcm.grant(other_host)).status_code == 200


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"key_pem": rsa_pem(1)}, "invalid_grant"),  # signed by another key
        ({"header": {"kid": "other"}}, "invalid_grant"),
        ({"header": {"alg": "RS512"}}, "invalid_grant"),
        ({"iss": "stranger@example.iam.gserviceaccount.com"}, "invalid_client"),
        ({"aud": "https://127.0.0.1/oauth2/v4/token"}, "invalid_grant"),
        ({"aud": None}, "invalid_grant"),
        ({"scope": "https://www.googleapis.com/auth/cloud-platform"}, "invalid_scope"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "invalid_grant"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant"),  # longer than an hour
        ({"iat": int(time.time()) + 600}, "invalid_grant"),  # issued in the future
    ],
)
async def test_bad_assertions_are_refused_as_oauth_errors(
    fcm: Fcm, change: dict[str, Any], error: str
) -> None:
    response = await fcm.grant(assertion(fcm.account, **change))
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


async def test_grant_type_and_garbage(fcm: Fcm) -> None:
    wrong = await fcm.http.post(
        fcm.url + "/token",
        data={"grant_type": "client_credentials", "assertion": assertion(fcm.account)},
    )
    assert wrong.json()["error"] == "unsupported_grant_type"
    assert (await fcm.grant("not.a-jwt")).json()["error"] == "invalid_grant"
    missing = await fcm.http.post(fcm.url + "/token", data={"grant_type": JWT_BEARER})
    assert missing.json()["error"] == "invalid_request"
    assert fcm.server.issued == 0


async def test_send_needs_an_issued_unexpired_access_token(fcm: Fcm) -> None:
    message = {"token": REG_TOKEN, "data": {}}
    for token in (None, "ya29.forged"):
        response = await fcm.send(message, token=token)
        assert response.status_code == 401
        assert _google(response)[:2] == (401, "UNAUTHENTICATED")
    token = await fcm.access_token()
    assert (await fcm.send(message, token=token)).status_code == 200
    fcm.now[0] += 3601
    assert (await fcm.send(message, token=token)).status_code == 401
    assert len(fcm.server.inbox.since(0)) == 1


async def test_other_projects_are_forbidden(fcm: Fcm) -> None:
    response = await fcm.send({"token": REG_TOKEN}, token=await fcm.access_token(), project="x")
    assert response.status_code == 403
    assert _google(response) == (403, "PERMISSION_DENIED", None)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"data": {"a": "b"}}, None),  # no token
        ({"token": "bad token with spaces"}, "message.token"),
        ({"token": REG_TOKEN, "data": {"unread": 2}}, "message.data[0].value"),
        ({"token": REG_TOKEN, "data": ["x"]}, None),
        ({"token": REG_TOKEN, "android": {"priority": "URGENT"}}, None),
        ("not an object", None),
    ],
)
async def test_invalid_messages_are_invalid_argument(
    fcm: Fcm, message: Any, field: str | None
) -> None:
    response = await fcm.send(message, token=await fcm.access_token())
    assert response.status_code == 400
    assert _google(response) == (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    violations = [
        v["field"]
        for d in response.json()["error"]["details"]
        for v in d.get("fieldViolations", [])
    ]
    assert violations == ([field] if field else [])
    assert fcm.server.inbox.since(0) == []


async def test_unregistered_tokens_answer_404_unregistered(fcm: Fcm) -> None:
    marked = await fcm.http.post(fcm.url + "/fcm/unregister", json={"token": REG_TOKEN})
    assert marked.status_code == 200
    response = await fcm.send({"token": REG_TOKEN}, token=await fcm.access_token())
    assert response.status_code == 404
    assert _google(response) == (404, "NOT_FOUND", "UNREGISTERED")
    assert (await fcm.http.post(fcm.url + "/fcm/unregister", json={})).status_code == 400


async def test_injected_faults_answer_in_googles_shape(fcm: Fcm) -> None:
    fcm.server.faults.arm(FaultRequest(target=REG_TOKEN, status=503, count=1, retry_after=7))
    token = await fcm.access_token()
    response = await fcm.send({"token": REG_TOKEN}, token=token)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert _google(response) == (503, "UNAVAILABLE", "UNAVAILABLE")
    assert (await fcm.send({"token": REG_TOKEN}, token=token)).status_code == 200
    assert fcm.server.attempts.of(REG_TOKEN)["statuses"] == [503, 200]


def test_fcm_routes_names_the_three_routes(tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    write_service_account(path, "https://127.0.0.1/token")
    config = parse_config(
        FcmServerConfig, {"project_id": PROJECT, "service_account_files": [str(path)]}
    )
    routes = fcm_routes(config, Inbox())
    assert sorted(r.path for r in routes) == [
        "/fcm/unregister",
        "/token",
        "/v1/projects/{project}/messages:send",
    ]
