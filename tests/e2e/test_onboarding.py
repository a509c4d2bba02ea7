"""The local run onboards its organisations through the real Registrierungs-Dienst (issue 5.10).

``timkit up`` runs the IDP stand-in, the mailbox and the RD beside the directory; the demo
organisations went through AF_10103 (OIDC at the IDP with their SMC-B) and AF_10060 (their
Messenger-Services provisioned by the RD). Here a further organisation does the same with its
own SMC-B, a person's HBA is refused, and the RD serves the signed federation list to proxies.
"""

from __future__ import annotations

from typing import Any

import httpx
import psutil
import pytest

from tests.support.federation import Federation
from tests.support.wait import async_wait_until
from timkit.runtime.demo import SPARE_ORGANISATION
from timkit.runtime.layout import Layout
from timkit.runtime.onboarding import (
    OnboardingError,
    RdClient,
    activate,
    enrol_admin,
    login,
    read_admins,
)

A = "praxis-sonnenschein.tim.test"
B = "klinikum-nord.tim.test"
NEW = "apotheke-test.tim.test"


@pytest.mark.timeout(240)
async def test_af_10103_af_10060_local_run_onboards_through_rd(
    federation: Federation, http: httpx.AsyncClient
) -> None:
    layout = Layout(federation.data_dir)
    assert oct(layout.demo_admins.stat().st_mode & 0o777) == "0o600"
    admins = read_admins(layout)
    assert len(admins) == 2
    for admin in admins.values():
        rd = RdClient(federation.portal_url, http)
        rd.token = admin.session
        assert await rd.session_valid()
        audit = (await http.get(f"{rd.base}/api/v1/audit", headers=_bearer(rd))).json()
        assert any(
            e["action"] == "verify.oidc" and e["result"] == "success" for e in audit["entries"]
        )
    services = {s["domain"]: s for s in federation.status()["services"]}
    assert {A, B} <= set(services)
    assert all(services[d]["healthy"] for d in (A, B))
    assert {A, B} <= set(await federation.served_domains(http))

    # A further organisation onboards itself: SMC-B at the IDP → account + TOTP → login.
    rd = RdClient(federation.portal_url, http)
    admin = await enrol_admin(rd, SPARE_ORGANISATION)
    assert admin.telematik_id == SPARE_ORGANISATION.telematik_id
    await activate(rd, admin)
    await login(rd, admin)
    requested = await rd.provision(NEW)
    assert requested["state"] == "requested"

    async def state_is(wanted: str) -> dict[str, Any] | None:
        current = await rd.service(NEW)
        assert current is not None
        assert current["state"] not in ("failed", "rolling_back"), current
        return current if current["state"] == wanted else None

    active = await async_wait_until(lambda: state_is("active"), f"{NEW} active", timeout=120)
    assert (await http.get(f"{active['client_url']}/health")).status_code == 200
    assert all(c["healthy"] for c in federation.service_components(NEW))

    async def listed() -> bool:
        return NEW in await federation.served_domains(http)

    await async_wait_until(listed, f"{NEW} in the list the RD serves", timeout=30)

    pids = [c["pid"] for c in federation.service_components(NEW)]
    assert len(pids) == 2
    await rd.deprovision(NEW)
    await async_wait_until(lambda: state_is("deleted"), f"{NEW} deleted", timeout=60)

    async def unlisted() -> bool:
        return NEW not in await federation.served_domains(http)

    await async_wait_until(unlisted, f"{NEW} gone from the list the RD serves", timeout=30)
    assert federation.service_components(NEW) == []
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def _bearer(rd: RdClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {rd.token}"}


async def test_ml_128759_hba_card_is_refused_at_the_rd(
    federation: Federation, http: httpx.AsyncClient
) -> None:
    rd = RdClient(federation.portal_url, http)
    with pytest.raises(OnboardingError) as refused:
        await rd.verify_with_card("hba-dr-demo")
    assert refused.value.status == 403
    assert refused.value.errcode == "M_FORBIDDEN"
    assert "HBA" in refused.value.message
    assert "SMC-B" in refused.value.message


async def test_federation_list_is_served_only_to_proxies(
    federation: Federation, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{federation.portal_url}/federation")
    assert response.status_code == 401
    wrong = await http.get(
        f"{federation.portal_url}/federation", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
