"""Helpers of the browser tests: Debian's Chromium via Playwright, numbered screenshots.

Screenshots land in ``tests/artifacts/registration/<test>/`` (gitignored); the directory is
printed so CI can collect it. The browser trusts nothing extra: the local CA is not installed,
so contexts ignore certificate errors (TLS is still on; cookies stay Secure).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "registration"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is missing; run scripts/test-deps"
)


class Shots:
    """Numbered screenshots of one test."""

    def __init__(self, name: str) -> None:
        self.dir = ARTIFACTS / re.sub(r"[^\w.-]", "_", name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.count = 0
        print(f"screenshots: {self.dir}")

    async def __call__(self, page: Page, label: str) -> None:
        self.count += 1
        await page.screenshot(path=str(self.dir / f"{self.count:02d}-{label}.png"), full_page=True)


async def new_page(browser: Browser, locale: str = "de-DE") -> Page:
    """A page in a fresh context (own cookies) that accepts the local PKI's certificates."""
    context = await browser.new_context(ignore_https_errors=True, locale=locale)
    return await context.new_page()


@asynccontextmanager
async def chromium(*args: str) -> AsyncIterator[Browser]:
    """Headless Debian Chromium (never a downloaded browser) with extra command-line ``args``."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", *args]
        )
        try:
            yield browser
        finally:
            await browser.close()


def fresh_totp(secret: str, used: set[int]) -> str:
    """A TOTP code of a 30 s step not in ``used`` (the current or the next; the RD takes each
    step once), recorded in ``used``."""
    step = int(time.time() // 30)
    while step in used:
        step += 1
    assert step <= int(time.time() // 30) + 1, "no unused TOTP step within the window"
    used.add(step)
    return pyotp.TOTP(secret).at(step * 30)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module (re-exported by the conftests that use it)."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    """Screenshots saved under ``tests/artifacts/registration/<test name>/``."""
    return Shots(request.node.name)
