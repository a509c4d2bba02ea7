"""The web frontend's protections: CSRF, cookies, security headers, language catalogues."""

from __future__ import annotations

import json
import re

from tests.registration.conftest import AdminSession, RdStack

from timkit.registration.web.i18n import CATALOGUES


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


async def test_catalogues_have_the_same_keys() -> None:
    de = json.loads((CATALOGUES / "de.json").read_text("utf-8"))
    en = json.loads((CATALOGUES / "en.json").read_text("utf-8"))
    assert set(de) == set(en)


async def test_security_headers_on_pages_api_and_redirects(rd: RdStack) -> None:
    for path in ("/", "/api/v1/account", "/dashboard"):
        response = await rd.client.get(rd.url + path)
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Strict-Transport-Security"].startswith("max-age="), path
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert "'unsafe-inline'" not in csp
        assert f"form-action 'self' {rd.idp_url}" in csp  # Verfahren 1 posts on to the IDP
    assert (await rd.client.get(rd.url + "/dashboard")).status_code == 303


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


async def test_api_refuses_cookie_sessions_for_state_changes(admin_session: AdminSession) -> None:
    rd = admin_session.rd
    header = {"Cookie": f"__Host-rd-session={admin_session.token}"}
    read = await rd.client.get(rd.url + "/api/v1/account", headers=header)
    assert read.status_code == 200  # the frontend's polling
    write = await rd.client.post(rd.url + "/api/v1/invitations", headers=header)
    assert write.status_code == 401  # state changes need the bearer token


async def test_error_page_in_both_languages(rd: RdStack) -> None:
    de = await rd.client.get(rd.url + "/oidc/callback?state=unknown&code=x")
    assert de.status_code == 401
    assert '<html lang="de">' in de.text
    assert "Das hat nicht geklappt" in de.text
    en = await rd.client.get(rd.url + "/oidc/callback?state=unknown&code=x&lang=en")
    assert '<html lang="en">' in en.text
    assert "That did not work" in en.text
    assert "ML-128758" in en.text
    rd.client.cookies.clear()
