"""WebAuthn in real Chromium (ML-129853): enrol and log in with a CDP virtual authenticator.

``rd.js`` runs end to end: it fetches the options from ``/api/v1/webauthn/register/begin``,
calls ``navigator.credentials.create`` (answered by Chromium's virtual authenticator, a CTAP2
security key added through the DevTools protocol), posts the credential, and at login does the
same with ``navigator.credentials.get`` before adopting the session as the cookie.

WebAuthn needs a secure context and an RP ID that is a domain: the RD runs over TLS with the
local PKI under ``https://localhost:<port>`` (its certificate names ``localhost``), so the RP
ID is ``localhost``; an IP-literal origin could not be an RP ID at all.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, CDPSession, Page, expect
from tests.registration.browser import Shots, needs_chromium, new_page
from tests.registration.conftest import PASSWORD, RdStack, start_rd

pytestmark = needs_chromium


@pytest.fixture
async def rd(tmp_path: Path) -> AsyncIterator[RdStack]:
    """The RD stack named ``localhost`` (WebAuthn RP ID and origin ``https://localhost:…``)."""
    async for stack in start_rd(tmp_path, host="localhost"):
        yield stack


async def virtual_authenticator(page: Page) -> tuple[CDPSession, str]:
    """A CTAP2 USB security key in ``page``'s browser that always consents (presence and UV)."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": False,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


async def _account_with_security_key(page: Page, rd: RdStack, shots: Shots, username: str) -> None:
    """SMC-B at the IDP, account form, then the security key instead of TOTP."""
    await page.goto(rd.url + "/")
    await page.click("#start-oidc")
    await page.wait_for_url(re.compile(re.escape(rd.idp_url) + r"/auth"))
    await page.click("form:has(input[name=card][value=praxis]) button[type=submit]")
    await expect(page.locator("#organisation")).to_contain_text("Praxis Dr. Test")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.fill("#password2", PASSWORD)
    await page.click("#create-account")
    await expect(page.locator("#webauthn-enrol")).to_be_visible()
    await shots(page, "enrolment")
    await page.click("#webauthn-enrol")
    await expect(page.locator("#webauthn-status")).to_have_text(
        "Sicherheitsschlüssel registriert. Sie können sich jetzt anmelden."
    )
    await shots(page, "security-key-registered")


async def test_ml_129853_webauthn_enrol_and_login_in_chromium(
    rd: RdStack, browser: Browser, shots: Shots
) -> None:
    page = await new_page(browser)
    cdp, authenticator = await virtual_authenticator(page)
    await _account_with_security_key(page, rd, shots, "key-admin")
    credentials = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(credentials["credentials"]) == 1
    assert credentials["credentials"][0]["rpId"] == "localhost"
    assert credentials["credentials"][0]["signCount"] == 1

    # The account is active through the key alone: TOTP login is refused for it.
    await page.goto(rd.url + "/login")
    await page.fill("#username", "key-admin")
    await page.fill("#password", PASSWORD)
    await page.fill("#otp", "123456")
    await page.click("#login")
    await expect(page.locator("#login-error")).to_be_visible()

    # A wrong password never reaches the authenticator.
    await page.fill("#username", "key-admin")
    await page.fill("#password", PASSWORD + "x")
    await page.click("#webauthn-login")
    await expect(page.locator("#login-error")).to_contain_text("username, password or code wrong")
    await shots(page, "wrong-password-refused")
    unused = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert unused["credentials"][0]["signCount"] == 1

    await page.fill("#password", PASSWORD)
    await page.click("#webauthn-login")
    await page.wait_for_url(rd.url + "/dashboard")
    await expect(page.locator("header .who")).to_contain_text("key-admin")
    await shots(page, "dashboard-after-security-key")
    used = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert used["credentials"][0]["signCount"] == 2
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["__Host-rd-session"]["secure"]

    account = await page.request.get(rd.url + "/api/v1/account")
    assert account.ok
    assert (await account.json())["username"] == "key-admin"
    await page.context.close()


async def test_ml_129853_webauthn_login_without_the_key_fails_in_chromium(
    rd: RdStack, browser: Browser, shots: Shots
) -> None:
    page = await new_page(browser)
    cdp, authenticator = await virtual_authenticator(page)
    await _account_with_security_key(page, rd, shots, "lost-key-admin")
    # The key is lost: another browser profile has a different authenticator.
    await cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
    await virtual_authenticator(page)
    await page.goto(rd.url + "/login")
    await page.fill("#username", "lost-key-admin")
    await page.fill("#password", PASSWORD)
    await page.click("#webauthn-login")
    await expect(page.locator("#login-error")).to_be_visible()
    await shots(page, "unknown-key-refused")
    assert page.url == rd.url + "/login"
    await page.context.close()
