"""AF_10060: provisioning as a persisted state machine, against a real FHIR-Proxy.

The backend here is the control-API double (``stack.ControlDouble``), so the tests can make
it slow, failing or unreachable; ``tests/e2e/test_provisioning.py`` runs the same path against the
real supervisor with real Synapse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.registration.provisioning.stack import ACTIVE_TID, ControlDouble, RdStack, start_rd
from tests.support.wait import async_wait_until

from timkit.core.errors import TimkitError
from timkit.registration.provisioning import handlers
from timkit.registration.provisioning.state_machine import Provisioner

DOMAIN = "praxis-neu.example.de"


async def _service(rd: RdStack, token: str, domain: str = DOMAIN) -> dict[str, Any]:
    response = await rd.api("GET", f"/api/v1/services/{domain}", token)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _until(rd: RdStack, token: str, state: str, domain: str = DOMAIN) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body = await _service(rd, token, domain)
        return body if body["state"] == state else None

    body = await async_wait_until(reached, f"{domain} {state}", timeout=30)
    assert isinstance(body, dict)
    return body


async def _at_directory(rd: RdStack, domain: str) -> bool:
    return await rd.ctx.directory.get_domain(domain) is not None


async def test_ml_123648_only_a_logged_in_org_admin_provisions(rd: RdStack) -> None:
    for method, path in (
        ("GET", "/api/v1/services"),
        ("POST", "/api/v1/services"),
        ("GET", f"/api/v1/services/{DOMAIN}"),
        ("DELETE", f"/api/v1/services/{DOMAIN}"),
        ("GET", f"/api/v1/domains/check?domain={DOMAIN}"),
    ):
        anonymous = await rd.api(method, path, json={"domain": DOMAIN})
        assert anonymous.status_code == 401, path
        assert anonymous.json()["errcode"] == "M_MISSING_TOKEN"
        forged = await rd.api(method, path, "not-a-session", json={"domain": DOMAIN})
        assert forged.status_code == 401
    assert rd.control is not None
    assert rd.control.calls == []
    assert not await _at_directory(rd, DOMAIN)


async def test_ml_123649_ml_123650_provision_creates_service_and_directory_entry(
    rd: RdStack, tmp_path: Path
) -> None:
    _, token = rd.admin()
    check = await rd.api("GET", f"/api/v1/domains/check?domain={DOMAIN}", token)
    assert check.json() == {"domain": DOMAIN, "available": True, "reason": ""}
    response = await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/api/v1/services/{DOMAIN}"
    assert response.json()["state"] == "requested"
    active = await _until(rd, token, "active")
    assert active["progress"] == 100
    assert active["client_url"].startswith("https://127.0.0.1:")
    # ML-123649: the service exists at the backend under the chosen domain
    assert rd.control is not None
    assert rd.control.services[DOMAIN]["phase"] == "running"
    # ML-123650: the domain is registered at the VZD-FHIR-Directory for the organisation
    held = await rd.ctx.directory.get_domain(DOMAIN)
    assert held is not None
    assert held.telematik_id == ACTIVE_TID
    listed = await rd.api("GET", "/api/v1/services", token)
    assert [s["domain"] for s in listed.json()["services"]] == [DOMAIN]
    taken = await rd.api("GET", f"/api/v1/domains/check?domain={DOMAIN}", token)
    assert taken.json()["available"] is False


async def test_ml_132585_raw_data_record_per_run_without_personal_data(
    rd: RdStack, tmp_path: Path
) -> None:
    _, token = rd.admin()
    await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})
    await _until(rd, token, "active")
    records = [
        json.loads(line) for line in (tmp_path / "rawdata.jsonl").read_text("utf-8").splitlines()
    ]
    runs = [r for r in records if r["use_case"] == "AF_10060"]
    assert len(runs) == 1
    run = runs[0]
    assert set(run) == {"use_case", "component", "start", "duration_ms", "result", "status"}
    assert (run["component"], run["result"], run["status"]) == ("registration", "success", 201)
    assert DOMAIN not in json.dumps(records)
    assert ACTIVE_TID not in json.dumps(records)


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("localhost", "not a DNS name"),
        ("praxis.example.de:8448", "no port"),
        ("127.0.0.1", "no IP"),
        ("pra_xis.example.de", "not a DNS name"),
        ("-praxis.example.de", "not a DNS name"),
    ],
)
async def test_bad_syntax_is_refused(rd: RdStack, domain: str, reason: str) -> None:
    _, token = rd.admin()
    check = await rd.api("GET", "/api/v1/domains/check", token, params={"domain": domain})
    assert check.json()["available"] is False
    assert reason in check.json()["reason"]
    response = await rd.api("POST", "/api/v1/services", token, json={"domain": domain})
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_PARAM"
    assert rd.control is not None
    assert rd.control.calls == []


async def test_domain_suffix_is_enforced(tmp_path: Path, rd_database: str) -> None:
    settings = {"provisioning": {"domain_suffix": ".tim.test"}}
    async for rd in start_rd(tmp_path, rd_database, settings=settings):
        _, token = rd.admin()
        check = await rd.api("GET", f"/api/v1/domains/check?domain={DOMAIN}", token)
        assert check.json()["available"] is False
        assert "end in .tim.test" in check.json()["reason"]
        ok = await rd.api("GET", "/api/v1/domains/check?domain=praxis.tim.test", token)
        assert ok.json()["available"] is True


async def test_taken_domain_is_refused_in_the_rd_and_at_the_directory(rd: RdStack) -> None:
    _, token = rd.admin()
    _, other = rd.admin("other", "1-other-org", "Andere Praxis")
    await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})
    again = await rd.api("POST", "/api/v1/services", other, json={"domain": DOMAIN})
    assert again.status_code == 409
    assert again.json()["errcode"] == "M_USER_IN_USE"
    # another provider's domain at the directory
    rd.fhir.add_provider("provider-b", "B")
    rd.fhir.add_domain("taken.example.de", "provider-b", ACTIVE_TID)
    check = await rd.api("GET", "/api/v1/domains/check?domain=taken.example.de", token)
    assert check.json()["available"] is False
    assert "already registered" in check.json()["reason"]
    refused = await rd.api("POST", "/api/v1/services", token, json={"domain": "taken.example.de"})
    assert refused.status_code == 409
    # another organisation cannot see or remove the service
    hidden = await rd.api("GET", f"/api/v1/services/{DOMAIN}", other)
    assert hidden.status_code == 404
    assert (await rd.api("DELETE", f"/api/v1/services/{DOMAIN}", other)).status_code == 404


async def test_several_services_per_organisation_up_to_the_limit(
    tmp_path: Path, rd_database: str
) -> None:
    control = ControlDouble()
    settings = {"provisioning": {"max_services": 2}}
    async for rd in start_rd(tmp_path, rd_database, control=control, settings=settings):
        _, token = rd.admin()
        for name in ("a.example.de", "b.example.de"):
            response = await rd.api("POST", "/api/v1/services", token, json={"domain": name})
            assert response.status_code == 202
        third = await rd.api("POST", "/api/v1/services", token, json={"domain": "c.example.de"})
        assert third.status_code == 403
        assert "at most 2" in third.json()["error"]
        await _until(rd, token, "active", "a.example.de")
        await _until(rd, token, "active", "b.example.de")


async def test_deprovision_removes_the_domain_from_the_federation_first(rd: RdStack) -> None:
    _, token = rd.admin()
    await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})
    await _until(rd, token, "active")
    assert rd.control is not None
    rd.control.down = True  # the backend cannot remove anything yet
    response = await rd.api("DELETE", f"/api/v1/services/{DOMAIN}", token)
    assert response.status_code == 202
    assert response.json()["state"] == "deregistering"

    async def out_of_federation_service_still_there() -> bool:
        body = await _service(rd, token)
        return bool(body["state"] == "deleting" and body["attempts"] > 0)

    await async_wait_until(out_of_federation_service_still_there, "deleting blocked")
    assert not await _at_directory(rd, DOMAIN)
    assert DOMAIN in rd.control.services  # the homeserver outlived its federation entry
    rd.control.down = False
    deleted = await _until(rd, token, "deleted")
    assert deleted["progress"] == 100
    assert DOMAIN not in rd.control.services
    listed = await rd.api("GET", "/api/v1/services", token)
    assert listed.json()["services"] == []
    # the domain is free again
    again = await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})
    assert again.status_code == 202
    await _until(rd, token, "active")


async def test_directory_unreachable_waits_in_registering_then_fails_without_orphans(
    tmp_path: Path, rd_database: str
) -> None:
    control = ControlDouble()
    async for rd in start_rd(tmp_path, rd_database, control=control):
        _, token = rd.admin()
        real = rd.ctx.directory.base
        rd.ctx.directory.base = "http://127.0.0.1:9"  # nothing listens: unreachable
        response = await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})
        assert response.status_code == 202  # availability re-checked when registering

        async def retrying(rd: RdStack = rd, token: str = token) -> dict[str, Any] | None:
            body = await _service(rd, token)
            return body if body["state"] == "registering" and body["attempts"] >= 1 else None

        waiting = await async_wait_until(retrying, "registering with a visible error")
        assert "unreachable" in waiting["error"]
        failed = await _until(rd, token, "failed")
        assert failed["step"] == "registering"
        assert "after 3 tries" in failed["error"]
        assert DOMAIN not in control.services  # no orphan process
        rd.ctx.directory.base = real
        assert not await _at_directory(rd, DOMAIN)  # no orphan domain
        # a failed service releases its domain: a retry succeeds
        retry = await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})
        assert retry.status_code == 202
        await _until(rd, token, "active")


async def test_directory_recovering_within_the_retries_completes(
    tmp_path: Path, rd_database: str
) -> None:
    control = ControlDouble()
    settings = {"provisioning": {"max_attempts": 1000}}
    async for rd in start_rd(tmp_path, rd_database, control=control, settings=settings):
        _, token = rd.admin()
        real = rd.ctx.directory.base
        rd.ctx.directory.base = "http://127.0.0.1:9"
        await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})

        async def retrying(rd: RdStack = rd, token: str = token) -> bool:
            body = await _service(rd, token)
            return bool(body["state"] == "registering" and body["attempts"] >= 2)

        await async_wait_until(retrying, "registering retries")
        rd.ctx.directory.base = real
        await _until(rd, token, "active")
        assert await _at_directory(rd, DOMAIN)


async def test_unhealthy_service_is_rolled_back(tmp_path: Path, rd_database: str) -> None:
    control = ControlDouble(fail_start={DOMAIN})
    async for rd in start_rd(tmp_path, rd_database, control=control):
        _, token = rd.admin()
        await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})
        failed = await _until(rd, token, "failed")
        assert failed["step"] == "waiting_healthy"
        assert "failed to start" in failed["error"]
        assert DOMAIN not in control.services
        assert not await _at_directory(rd, DOMAIN)


@pytest.mark.parametrize("crash_in", ["creating", "waiting_healthy", "registering"])
async def test_crash_between_steps_resumes_and_converges(
    tmp_path: Path, rd_database: str, crash_in: str
) -> None:
    control = ControlDouble(healthy_after=1_000_000)  # never healthy until released
    # Enough attempts that the step cannot give up (and roll back) before the crash.
    patient = {"provisioning": {"max_attempts": 1_000_000}}
    async for rd in start_rd(tmp_path, rd_database, control=control, settings=patient):
        admin, token = rd.admin()
        if crash_in == "creating":
            control.down = True
        if crash_in == "registering":
            control.healthy_after = 1
            rd.ctx.directory.base, real = "http://127.0.0.1:9", rd.ctx.directory.base
        await handlers.provision(rd.ctx, admin, DOMAIN)
        await _until(rd, token, crash_in)
        await rd.ctx.provisioner.stop()  # the worker dies between steps
        if crash_in == "registering":
            # the directory got the domain just before the crash, the RD never heard back
            rd.ctx.directory.base = real
            await rd.ctx.directory.add_domain(DOMAIN, ACTIVE_TID)
        control.down = False
        control.healthy_after = 1
        old = rd.ctx.provisioner
        resumed = Provisioner(
            old.db, old.settings, old.backend, old.directory, old.rawdata, executor=old.executor
        )
        rd.ctx.provisioner = resumed
        resumed.start()
        active = await _until(rd, token, "active")
        assert active["error"] == ""
        assert list(control.services) == [DOMAIN]
        assert await _at_directory(rd, DOMAIN)


async def test_start_reconciles_active_services_with_the_backend(rd: RdStack) -> None:
    _, token = rd.admin()
    await rd.api("POST", "/api/v1/services", token, json={"domain": DOMAIN})
    await _until(rd, token, "active")
    assert rd.control is not None
    rd.control.services.clear()  # the runtime lost it (e.g. restarted without its records)
    await rd.ctx.provisioner.reconcile()
    assert DOMAIN in rd.control.services


async def test_handlers_refuse_other_organisations(rd: RdStack) -> None:
    admin, _ = rd.admin()
    other, _ = rd.admin("other", "1-other-org", "Andere Praxis")
    await handlers.provision(rd.ctx, admin, DOMAIN)
    with pytest.raises(TimkitError) as err:
        await handlers.get_service(rd.ctx, other, DOMAIN)
    assert err.value.status == 404
    assert [v.domain for v in await handlers.list_services(rd.ctx, other)] == []
