"""CSRF protection of the web forms: the ``__Host-`` cookie and the form token, both required."""

from __future__ import annotations

import re

from tests.registration.conftest import RdStack


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


async def test_csrf_cookie_is_host_prefixed_and_required(rd: RdStack) -> None:
    start = await rd.client.get(rd.url + "/")
    cookie = start.headers["set-cookie"]
    assert cookie.startswith("__Host-rd-csrf=")
    assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"))
    token = _csrf(start.text)
    # Without the token (or with another one) a form POST is refused.
    missing = await rd.client.post(rd.url + "/oidc/start", data={})
    assert missing.status_code == 403
    assert "CSRF" in missing.text
    forged = await rd.client.post(rd.url + "/oidc/start", data={"csrf": "x" * 43})
    assert forged.status_code == 403
    foreign = await rd.client.post(
        rd.url + "/oidc/start", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    ok = await rd.client.post(rd.url + "/oidc/start", data={"csrf": token})
    assert ok.status_code == 303
    assert ok.headers["location"].startswith(rd.idp_url + "/auth?")
