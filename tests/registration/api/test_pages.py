"""The RD's pages in real Chromium (Debian's ``chromium``, driven by Playwright from PyPI).

Screenshots of every step land in ``tests/artifacts/registration/<test>/`` (gitignored); the
directory is printed so CI can collect it. The browser trusts nothing extra: the local CA is
not installed, so contexts ignore certificate errors (TLS is still on; cookies stay Secure).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
from playwright.async_api import Browser, Page, expect
from tests.registration.browser import Shots, fresh_totp, needs_chromium, new_page
from tests.registration.conftest import PASSWORD, RdStack, start_rd

pytestmark = needs_chromium


async def _page(browser: Browser) -> Page:
    return await new_page(browser)


async def _verify_with_card(page: Page, rd: RdStack, card: str, shots: Shots) -> None:
    await page.goto(rd.url + "/")
    await shots(page, "start")
    await page.click("#start-oidc")
    await page.wait_for_url(re.compile(re.escape(rd.idp_url) + r"/auth"))
    await shots(page, "idp-card-selection")
    await page.click(f"form:has(input[name=card][value={card}]) button[type=submit]")
    await page.wait_for_url(re.compile(re.escape(rd.url) + r"/oidc/callback"))


async def _register(page: Page, rd: RdStack, shots: Shots, username: str) -> tuple[str, set[int]]:
    """OIDC with the SMC-B, account form, TOTP enrolment; returns the secret, used steps."""
    await _verify_with_card(page, rd, "praxis", shots)
    await expect(page.locator("#organisation")).to_contain_text("Praxis Dr. Test")
    await expect(page.locator("#organisation")).to_contain_text("1-2.58.00000040")
    await shots(page, "verified")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.fill("#password2", PASSWORD)
    await page.click("#create-account")
    await expect(page.locator("#totp-qr svg")).to_be_visible()
    await shots(page, "totp-enrolment")
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    used: set[int] = set()
    await page.fill("#code", fresh_totp(secret, used))
    await page.click("#confirm-totp")
    await expect(page.locator("#account-active")).to_contain_text(username)
    await shots(page, "account-active")
    return secret, used


async def _login(page: Page, rd: RdStack, username: str, otp: str) -> None:
    await page.goto(rd.url + "/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.fill("#otp", otp)
    await page.click("#login")


async def test_af_10103_in_chromium_oidc_account_totp_login(
    rd: RdStack, browser: Browser, shots: Shots
) -> None:
    page = await _page(browser)
    secret, used = await _register(page, rd, shots, "browser-admin")

    # A wrong second factor is refused, with the password right.
    wrong = str((int(pyotp.TOTP(secret).now()) + 1) % 1_000_000).zfill(6)
    await _login(page, rd, "browser-admin", wrong)
    await expect(page.locator("#login-error")).to_contain_text(
        "Benutzername, Passwort oder Code falsch"
    )
    await shots(page, "wrong-code-refused")

    await _login(page, rd, "browser-admin", fresh_totp(secret, used))
    await page.wait_for_url(rd.url + "/dashboard")
    await expect(page.locator("h1")).to_contain_text("Messenger-Services Ihrer Organisation")
    await expect(page.locator("#no-services")).to_be_visible()
    await shots(page, "dashboard")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["__Host-rd-session"]
    assert session["secure"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"

    # English on request, remembered.
    await page.click("a[hreflang=en]")
    await expect(page.locator("h1")).to_contain_text("Your organisation's Messenger-Services")
    await page.goto(rd.url + "/dashboard")
    await expect(page.locator("h1")).to_contain_text("Your organisation's Messenger-Services")
    await shots(page, "dashboard-en")

    await page.click("header form button")  # log out
    await page.wait_for_url(rd.url + "/")
    await page.goto(rd.url + "/dashboard")
    await page.wait_for_url(rd.url + "/login")
    await page.context.close()


async def test_ml_128759_hba_card_refused_in_chromium(
    rd: RdStack, browser: Browser, shots: Shots
) -> None:
    page = await _page(browser)
    await _verify_with_card(page, rd, "arzt", shots)
    await expect(page.locator("#error-message")).to_contain_text("Berufs-OID einer Person (HBA)")
    await expect(page.locator("#error-message")).to_contain_text("SMC-B der Organisation")
    await shots(page, "hba-refused")
    await page.context.close()


async def test_ml_129853_lockout_in_chromium(
    tmp_path: Path, browser: Browser, shots: Shots
) -> None:
    async for rd in start_rd(tmp_path, accounts={"max_failures": 3}):
        page = await _page(browser)
        secret, used = await _register(page, rd, shots, "locked-admin")
        for _ in range(3):
            await _login(page, rd, "locked-admin", "000000")
        await expect(page.locator("#login-error")).to_contain_text("gesperrt")
        await shots(page, "locked")
        await _login(page, rd, "locked-admin", fresh_totp(secret, used))
        await expect(page.locator("#login-error")).to_contain_text("gesperrt")
        await page.context.close()
