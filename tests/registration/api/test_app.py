"""The RD's edge answers like every timkit edge (:func:`timkit.core.web.guard`).

Unknown paths and wrong methods get 404 / 405 ``M_UNRECOGNIZED`` (405 with ``Allow``), an
unexpected error a 500 ``M_UNKNOWN`` without internals: JSON on the machine paths, the RD's
HTML error page on the pages; the security headers are on every error.
"""

from __future__ import annotations

import httpx
from aiohttp import web
from tests.registration.conftest import RdStack

from timkit.core.process import free_port
from timkit.core.web import running_app
from timkit.registration.api import create_app

SECRET = "db password hunter2 at /srv/internal"


def _assert_secure(response: httpx.Response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


async def test_unknown_machine_paths_are_404_m_unrecognized_json(rd: RdStack) -> None:
    for path in (
        "/api/v1/nope",
        "/api/v2/account",
        "/federation/extra",
        "/vzd/nope",
        "/api/v1/%6Eope",  # percent-encoded spelling
    ):
        response = await rd.client.get(rd.url + path)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"].startswith("application/json"), path
        assert response.json()["errcode"] == "M_UNRECOGNIZED", path
        _assert_secure(response)


async def test_wrong_methods_are_405_m_unrecognized_with_allow(rd: RdStack) -> None:
    for method, path, allowed in (
        ("DELETE", "/federation", "GET"),
        ("GET", "/vzd/invite", "POST"),
        ("PUT", "/api/v1/token", "POST"),
        ("PATCH", "/api/v1/services", "GET"),
        ("PATCH", "/api/v1/%73ervices", "GET"),  # percent-encoded spelling
    ):
        response = await rd.client.request(method, rd.url + path)
        assert response.status_code == 405, (method, path)
        assert allowed in response.headers["Allow"].split(","), (method, path)
        assert response.json()["errcode"] == "M_UNRECOGNIZED", (method, path)
        _assert_secure(response)


async def test_unknown_and_wrong_method_pages_get_the_html_error_page(rd: RdStack) -> None:
    for path in ("/no-such-page", "/API/v1/account"):  # routes are case-sensitive
        missing = await rd.client.get(rd.url + path, headers={"Accept-Language": "en"})
        assert missing.status_code == 404, path
        assert missing.headers["Content-Type"].startswith("text/html"), path
        assert 'id="error-message"' in missing.text, path
        assert "M_UNRECOGNIZED" in missing.text, path
        _assert_secure(missing)
    wrong = await rd.client.delete(rd.url + "/login")
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["Allow"].split(",")
    assert wrong.headers["Content-Type"].startswith("text/html")
    _assert_secure(wrong)


async def test_a_crash_is_a_500_without_internals(rd: RdStack) -> None:
    """The RD's own application (context, middlewares) with one route that fails."""

    async def crash(_request: web.Request) -> web.Response:
        raise RuntimeError(SECRET)

    app = create_app(rd.ctx)
    app.router.add_get("/api/v1/crash", crash)
    app.router.add_get("/crash", crash)
    port = free_port()
    async with running_app(app, "127.0.0.1", port), httpx.AsyncClient() as client:
        api = await client.get(f"http://127.0.0.1:{port}/api/v1/crash")
        assert api.status_code == 500
        assert api.json() == {"errcode": "M_UNKNOWN", "error": "internal error"}
        page = await client.get(f"http://127.0.0.1:{port}/crash")
        assert page.status_code == 500
        assert page.headers["Content-Type"].startswith("text/html")
        for response in (api, page):
            assert "hunter2" not in response.text
            assert "RuntimeError" not in response.text
            _assert_secure(response)


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
