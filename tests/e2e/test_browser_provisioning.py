"""AF_10060 through the RD's pages in real Chromium, against the local run's own RD.

``timkit up`` runs a federation with one Messenger-Service and the local run's
Registrierungs-Dienst (over TLS, wired to the IDP stand-in, the FHIR-Proxy and the runtime's
control API). In Chromium the spare organisation (:data:`SPARE_ORGANISATION`, an SMC-B at the
IDP stand-in without a service) authenticates itself (AF_10103 Verfahren 1), sets up its
Org-Admin with TOTP and logs in. On the dashboard the live domain check refuses a taken and an
invalid domain with the reason; a free domain is provisioned and the progress page follows
the state machine until ``active``: a real Synapse answers, and its domain is in the signed
federation list the RD serves its proxies. Deprovisioning, confirmed by typing the domain,
takes it out of the list and stops the processes. Screenshots: ``tests/artifacts/registration/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.registration.browser import Shots, fresh_totp, needs_chromium, new_page
from tests.registration.conftest import PASSWORD
from tests.support.federation import DOMAINS, Federation, running, write_config
from tests.support.wait import async_wait_until
from timkit.runtime.demo import SPARE_ORGANISATION

pytestmark = needs_chromium
NEW = "apotheke-browser.tim.test"
TAKEN = DOMAINS[0]  # the demo organisation's service, onboarded by `timkit up`


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """``timkit up`` with one Messenger-Service; the RD is the local run's own."""
    with running(write_config(tmp_path_factory.mktemp("browser-af10060"), services=1)) as up:
        yield up


async def _log_in_spare_admin(page: Page, portal: str, shots: Shots) -> None:
    """AF_10103 with the spare SMC-B, account + TOTP, login: ends on the dashboard."""
    await page.goto(portal + "/")
    await page.click("#start-oidc")
    await page.wait_for_url(re.compile(r".*/auth\?"))
    await shots(page, "idp-card-selection")
    card = SPARE_ORGANISATION.key
    await page.click(f"form:has(input[name=card][value={card}]) button[type=submit]")
    await expect(page.locator("#organisation")).to_contain_text(SPARE_ORGANISATION.name)
    await page.fill("#username", "apotheke-browser-admin")
    await page.fill("#password", PASSWORD)
    await page.fill("#password2", PASSWORD)
    await page.click("#create-account")
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    used: set[int] = set()
    await page.fill("#code", fresh_totp(secret, used))
    await page.click("#confirm-totp")
    await expect(page.locator("#account-active")).to_be_visible()
    await page.goto(portal + "/login")
    await page.fill("#username", "apotheke-browser-admin")
    await page.fill("#password", PASSWORD)
    await page.fill("#otp", fresh_totp(secret, used))
    await page.click("#login")
    await page.wait_for_url(portal + "/dashboard")
    await expect(page.locator("#no-services")).to_be_visible()
    await shots(page, "dashboard-empty")


async def _check_domain(page: Page, domain: str) -> None:
    """Type ``domain`` into the provision form; the live check answers on its own."""
    await page.fill("#domain", "")
    await expect(page.locator("#domain-status")).to_have_text("")
    await page.locator("#domain").press_sequentially(domain)


async def _watch_states(page: Page) -> None:
    """Record every state the progress page shows (``window.seenStates``)."""
    await page.evaluate(
        """() => {
            const state = document.getElementById("service-state");
            window.seenStates = [state.textContent];
            new MutationObserver(() => {
                if (window.seenStates.at(-1) !== state.textContent)
                    window.seenStates.push(state.textContent);
            }).observe(state, { childList: true, characterData: true, subtree: true });
        }"""
    )


@pytest.mark.timeout(400)
async def test_ml_123648_ml_123649_ml_123650_provision_and_deprovision_in_chromium(
    federation: Federation, browser: Browser, shots: Shots, http: httpx.AsyncClient
) -> None:
    portal = federation.portal_url
    page = await new_page(browser)
    await _log_in_spare_admin(page, portal, shots)

    # Live domain check: a taken and an invalid domain are refused with the reason.
    status = page.locator("#domain-status")
    await _check_domain(page, TAKEN)
    await expect(status).to_contain_text("Domain ist nicht verfügbar: the domain is already in use")
    await expect(status).to_have_class(re.compile(r"\berror\b"))
    await shots(page, "domain-taken")
    await _check_domain(page, "keine domain")
    await expect(status).to_contain_text("Domain ist nicht verfügbar: 'keine domain' is not a DNS")
    await shots(page, "domain-invalid")
    await _check_domain(page, NEW)
    await expect(status).to_have_text("Domain ist verfügbar.")
    await expect(status).to_have_class(re.compile(r"\bok\b"))
    await shots(page, "domain-available")
    assert NEW not in await federation.served_domains(http)

    # Provision: the progress page follows the state machine until the service is active.
    await page.click("#provision")
    await page.wait_for_url(f"{portal}/services/{NEW}")
    await _watch_states(page)
    await shots(page, "progress")
    await expect(page.locator("#service-state")).to_have_text("active", timeout=180_000)
    await expect(page.locator("#service-progress")).to_have_attribute("value", "100")
    await expect(page.locator("#service-client")).to_contain_text("https://")
    await expect(page.locator("#service-error")).to_have_text("")
    await shots(page, "active")
    seen: list[str] = await page.evaluate("window.seenStates")
    assert seen[-1] == "active"
    assert len(seen) >= 2, seen  # progress was shown on the way, not just the result
    assert not {"failed", "rolling_back"} & set(seen), seen

    client_url = federation.client_url(NEW)
    assert (await http.get(client_url + "/health")).status_code == 200  # ML-123649

    async def listed() -> bool:
        return NEW in await federation.served_domains(http)

    await async_wait_until(listed, f"{NEW} in the list the RD serves", timeout=30)  # ML-123650

    await page.goto(portal + "/dashboard")
    row = page.locator("#services tr", has_text=NEW)
    await expect(row).to_contain_text("active")
    await shots(page, "dashboard-with-service")

    # Deprovision: a mistyped confirmation changes nothing; the right one removes the service.
    await row.get_by_role("link", name="Entfernen").click()
    await page.wait_for_url(f"{portal}/services/{NEW}/delete")
    await page.fill("#confirm", "apotheke.tim.test")
    await page.click("#deprovision")
    await expect(page.locator("#error-message")).to_have_text(
        "Die eingegebene Domain stimmt nicht überein."
    )
    await shots(page, "confirmation-mismatch")
    assert NEW in await federation.served_domains(http)
    await page.goto(f"{portal}/services/{NEW}/delete")
    await page.fill("#confirm", NEW)
    await shots(page, "confirm-deprovision")
    await page.click("#deprovision")
    await page.wait_for_url(f"{portal}/services/{NEW}")
    await expect(page.locator("#service-state")).to_have_text("deleted", timeout=120_000)
    await shots(page, "deleted")

    async def unlisted() -> bool:
        return NEW not in await federation.served_domains(http)

    await async_wait_until(unlisted, f"{NEW} gone from the list the RD serves", timeout=30)
    assert NEW not in {s["domain"] for s in federation.status()["services"]}
    await page.goto(portal + "/dashboard")
    await expect(page.locator("#no-services")).to_be_visible()
    await shots(page, "dashboard-after-deprovision")
    await page.context.close()
