"""Rate limits per client IP on logins and KIM mails, on top of the account lockout."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.registration.conftest import PASSWORD, RdStack, start_rd

KIM_ORG = "1-2.58.00000041"


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[RdStack]:
    """An RD allowing 3 login attempts and 1 KIM mail per client IP (refill: 1 a minute)."""
    async for stack in start_rd(
        tmp_path,
        accounts={"login_rate_limit": {"per_minute": 1, "burst": 3}},
        kim={"rate_limit": {"per_minute": 1, "burst": 1}},
    ):
        yield stack


async def test_ml_129853_api_login_is_rate_limited_per_client_ip(limited: RdStack) -> None:
    rd = limited
    url = rd.url + "/api/v1/login"
    for name in ("nobody-1", "nobody-2"):  # different accounts: the lockout does not help
        wrong = await rd.client.post(url, json={"username": name, "password": "x", "otp": "1"})
        assert wrong.status_code == 401
    begin = await rd.client.post(
        rd.url + "/api/v1/login/webauthn/begin", json={"username": "nobody-3", "password": "x"}
    )
    assert begin.status_code == 401  # counts as a login attempt too
    refused = await rd.client.post(url, json={"username": "nobody-4", "password": "x", "otp": "1"})
    assert refused.status_code == 429
    body = refused.json()
    assert body["errcode"] == "M_LIMIT_EXCEEDED"
    assert 0 < body["retry_after_ms"] <= 60_000
    assert "too many login attempts" in body["error"]
    # The KIM limit is a bucket of its own.
    kim = await rd.client.post(rd.url + "/api/v1/organisations/kim", json={"telematikID": KIM_ORG})
    assert kim.status_code == 202


async def test_kim_mails_are_rate_limited_per_client_ip(limited: RdStack) -> None:
    rd = limited
    url = rd.url + "/api/v1/organisations/kim"
    assert (await rd.client.post(url, json={"telematikID": KIM_ORG})).status_code == 202
    again = await rd.client.post(url, json={"telematikID": KIM_ORG})
    assert again.status_code == 429
    assert again.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert again.json()["retry_after_ms"] > 0
    assert len(rd.mails) == 1


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


async def test_ml_129853_login_page_says_how_long_to_wait(limited: RdStack) -> None:
    rd = limited
    token = _csrf((await rd.client.get(rd.url + "/login")).text)
    form = {"csrf": token, "username": "nobody", "password": PASSWORD, "otp": "123456"}
    for _ in range(3):
        assert (await rd.client.post(rd.url + "/login", data=form)).status_code == 401
    refused = await rd.client.post(rd.url + "/login", data=form)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert "Zu viele Anmeldeversuche von Ihrer Adresse aus" in refused.text
    assert re.search(r"in \d+ Sekunden wieder", refused.text)
    assert 'id="login-form"' in refused.text  # the form stays, nothing else leaks


async def test_kim_page_is_rate_limited_with_a_friendly_page(limited: RdStack) -> None:
    rd = limited
    token = _csrf((await rd.client.get(rd.url + "/?lang=en")).text)
    form = {"csrf": token, "telematik_id": KIM_ORG}
    assert (await rd.client.post(rd.url + "/kim/start", data=form)).status_code == 200
    refused = await rd.client.post(rd.url + "/kim/start", data=form)
    assert refused.status_code == 429
    assert "Too many requests" in refused.text
    assert re.search(r"Please wait \d+ seconds", refused.text)
    assert len(rd.mails) == 1
