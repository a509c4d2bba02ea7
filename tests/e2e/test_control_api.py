"""The supervisor's control API (embedded provisioning backend) against real processes.

A federation with one configured service is started with the real ``timkit up``; services
are then added and removed through the API while it runs, each a real Synapse and forward
proxy.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.federation import Federation, running, timkit, write_config
from tests.support.wait import wait_until
from timkit.core.errors import TimkitError
from timkit.core.tls import client_ssl_context
from timkit.runtime.backend import read_records
from timkit.runtime.config import TimkitConfig, load_config
from timkit.runtime.layout import Layout
from timkit.runtime.services import ServiceControl, control_url

CONFIGURED = "praxis-sonnenschein.tim.test"
DYNAMIC = "apotheke-am-markt.tim.test"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """One configured Messenger-Service (overrides the shared two-service federation)."""
    with running(write_config(tmp_path_factory.mktemp("control"), services=1)) as federation:
        yield federation


def _config(federation: Federation) -> TimkitConfig:
    return load_config(federation.config)


@pytest.fixture
async def control(federation: Federation) -> AsyncIterator[ServiceControl]:
    async with ServiceControl.for_config(_config(federation), timeout=30.0) as client:
        yield client


@pytest.fixture(scope="module")
def provisioned(federation: Federation) -> str:
    """DYNAMIC, provisioned through the API and healthy."""

    async def provision() -> None:
        async with ServiceControl.for_config(_config(federation), timeout=30.0) as control:
            status, created = await control.ensure(DYNAMIC, "Apotheke am Markt")
            assert created is True
            assert status.phase == "starting"
            await control.wait_healthy(DYNAMIC, timeout=90)

    asyncio.run(provision())
    return DYNAMIC


def _component_pids(federation: Federation, domain: str) -> dict[str, int]:
    return {c["kind"]: c["pid"] for c in federation.service_components(domain) if c["pid"]}


def _routes(federation: Federation) -> dict[str, str]:
    names = Layout(_config(federation).data_dir).names_file
    return dict(json.loads(names.read_text("utf-8")))


def test_health_is_open_everything_else_needs_the_token(federation: Federation) -> None:
    config = _config(federation)
    base = control_url(config)
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    missing = httpx.get(f"{base}/services")
    assert missing.status_code == 401
    assert missing.json()["errcode"] == "M_MISSING_TOKEN"
    wrong = httpx.put(
        f"{base}/services/x.tim.test",
        json={"organisation": "X"},
        headers={"Authorization": "Bearer not-the-token"},
    )
    assert wrong.status_code == 401
    assert wrong.json()["errcode"] == "M_UNKNOWN_TOKEN"
    token_file = Layout(config.data_dir).control_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


async def test_put_provisions_a_healthy_service_reachable_by_the_federation(
    federation: Federation, provisioned: str, control: ServiceControl
) -> None:
    status = await control.status(provisioned)
    assert status is not None
    assert status.phase == "running"
    assert status.healthy is True
    assert status.organisation == "Apotheke am Markt"
    async with httpx.AsyncClient(verify=client_ssl_context(Path(federation.ca_cert))) as http:
        versions = await http.get(f"{status.client_url}/_matrix/client/versions")
    assert versions.status_code == 200
    # Ports are free ones (not configured), recorded so they stay stable.
    layout = Layout(_config(federation).data_dir)
    record = next(r for r in read_records(layout) if r.domain == provisioned)
    assert status.client_url == f"https://127.0.0.1:{record.port}"
    assert _routes(federation)[provisioned] == f"127.0.0.1:{record.port}"
    # Every forward proxy reads the route file, so all reach it without a restart (through
    # their federation-list check, once the RD has registered the domain).
    # Both appear in `timkit status`, and users can be created on it.
    document = federation.status()
    assert set(_component_pids(federation, provisioned)) == {"proxy", "homeserver"}
    assert {s["domain"] for s in document["services"]} == {CONFIGURED, provisioned}
    assert federation.add_user(provisioned, "anna", "pw-anna") == f"@anna:{provisioned}"
    listed = await control.services()
    assert [s.domain for s in listed] == sorted([CONFIGURED, provisioned])


async def test_put_again_is_idempotent_other_organisation_conflicts(
    federation: Federation, provisioned: str, control: ServiceControl
) -> None:
    pids = _component_pids(federation, provisioned)
    status, created = await control.ensure(provisioned, "Apotheke am Markt")
    assert created is False
    assert status.healthy is True
    assert _component_pids(federation, provisioned) == pids
    # The configured service was provisioned by `timkit up` through the same API.
    _, created = await control.ensure(CONFIGURED, "Test organisation 0")
    assert created is False
    with pytest.raises(TimkitError) as conflict:
        await control.ensure(provisioned, "Someone else")
    assert conflict.value.status == 409


@pytest.mark.parametrize(
    ("domain", "rule"),
    [
        ("Praxis.tim.test", "lowercase DNS name"),
        ("praxis.tim.test:8448", "must not carry a port"),
        ("localhost", "lowercase DNS name"),
        ("-bad.tim.test", "lowercase DNS name"),
    ],
)
async def test_bad_domain_is_400_naming_the_rule(
    control: ServiceControl, domain: str, rule: str
) -> None:
    with pytest.raises(TimkitError) as error:
        await control.ensure(domain, "X")
    assert error.value.status == 400
    assert error.value.errcode == "M_INVALID_PARAM"
    assert rule in error.value.message


def test_bad_bodies_and_unknown_domains(federation: Federation) -> None:
    config = _config(federation)
    base = control_url(config)
    token = Layout(config.data_dir).control_token.read_text("utf-8").strip()
    auth = {"Authorization": f"Bearer {token}"}
    not_json = httpx.put(f"{base}/services/x.tim.test", content=b"{", headers=auth)
    assert (not_json.status_code, not_json.json()["errcode"]) == (400, "M_NOT_JSON")
    deep = b"[" * 20_000 + b"]" * 20_000
    too_deep = httpx.put(f"{base}/services/x.tim.test", content=deep, headers=auth)
    assert too_deep.status_code == 400
    assert too_deep.json() == {
        "errcode": "M_NOT_JSON",
        "error": "the request body is JSON nested deeper than 1024 levels",
    }
    no_org = httpx.put(f"{base}/services/x.tim.test", json={"org": "X"}, headers=auth)
    assert (no_org.status_code, no_org.json()["errcode"]) == (400, "M_BAD_JSON")
    unknown = httpx.get(f"{base}/services/nowhere.tim.test", headers=auth)
    assert (unknown.status_code, unknown.json()["errcode"]) == (404, "M_NOT_FOUND")
    gone = httpx.delete(f"{base}/services/nowhere.tim.test", headers=auth)
    assert gone.status_code == 404


async def test_delete_leaves_no_process_no_route_and_no_data(
    federation: Federation, control: ServiceControl
) -> None:
    domain = "klinikum-nord.tim.test"
    await control.ensure(domain, "Klinikum Nord")
    await control.wait_healthy(domain, timeout=90)
    pids = _component_pids(federation, domain)
    assert len(pids) == 2
    layout = Layout(_config(federation).data_dir)
    assert layout.service_record(domain).exists()
    assert domain in _routes(federation)

    assert await control.remove(domain) is True

    assert not [
        p for p in pids.values() if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
    ]
    assert domain not in _routes(federation)
    assert not layout.service_dir(domain).exists()
    assert await control.status(domain) is None
    assert _component_pids(federation, domain) == {}
    assert domain not in {s["domain"] for s in federation.status()["services"]}
    assert domain not in _routes(federation)
    assert await control.remove(domain) is False  # unknown now: 404, nothing to do


def test_provisioned_service_comes_back_after_down_and_up(tmp_path: Path) -> None:
    config_file = write_config(tmp_path, services=0)
    config = load_config(config_file)
    with running(config_file) as federation:

        async def provision() -> str:
            async with ServiceControl.for_config(config, timeout=30.0) as control:
                await control.ensure(DYNAMIC, "Apotheke am Markt")
                return (await control.wait_healthy(DYNAMIC, timeout=90)).client_url

        client_url = asyncio.run(provision())
        federation.add_user(DYNAMIC, "bert", "pw-bert")
        down = timkit(config_file, "down")
        assert "stopped 10 processes" in down.stdout  # supervisor, 7 shared, 2 of the service
        assert federation.status()["services"][0]["client_url"] == client_url  # from the record

        timkit(config_file, "up")
        status = federation.status()
        service = next(s for s in status["services"] if s["domain"] == DYNAMIC)
        assert service["client_url"] == client_url
        wait_until(lambda: service_healthy(federation), "the restored service")
        again = timkit(config_file, "user", "add", DYNAMIC, "bert", "--password", "pw-bert")
        assert json.loads(again.stdout)["created"] is False  # same Synapse data as before


def service_healthy(federation: Federation) -> bool:
    services = federation.status()["services"]
    return bool(services) and all(s.get("healthy") for s in services)
