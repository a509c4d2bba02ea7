"""AF_10060 end to end: the RD provisions a real Synapse through the real supervisor.

``timkit up`` runs a federation (FHIR-Directory, FHIR-Proxy, one Messenger-Service, the
supervisor's control API and the local run's own RD); an RD in this process uses the local
run's RD provider credentials and the control API. An Org-Admin of the running organisation
provisions a second service: Synapse starts, answers over TLS, its domain enters the
federation list the RD serves; deprovisioning takes the domain out of the list and stops the
processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from tests.registration.provisioning.stack import PROXY_TOKEN, make_admin
from tests.support.federation import DOMAINS, running, write_config
from tests.support.wait import async_wait_until
from timkit.core import jwt
from timkit.core.config import parse_config
from timkit.core.http import async_client
from timkit.core.process import free_port
from timkit.registration.api import create_app
from timkit.registration.config import RegistrationConfig
from timkit.registration.context import RegistrationContext
from timkit.registration.service import open_context
from timkit.runtime.config import TimkitConfig, load_config
from timkit.runtime.demo import telematik_id
from timkit.runtime.layout import Layout
from timkit.runtime.plan import RD_PROVIDER, fhir_proxy_url
from timkit.runtime.services import control_url

NEW = "zahnarzt-neu.tim.test"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TimkitConfig]:
    """One Messenger-Service (overrides the shared two-service federation); its config."""
    path = write_config(tmp_path_factory.mktemp("af10060"), services=1)
    with running(path):
        yield load_config(path)


@pytest.fixture
async def rd(
    federation: TimkitConfig, tmp_path: Path
) -> AsyncIterator[tuple[RegistrationContext, str, httpx.AsyncClient]]:
    layout = Layout(federation.data_dir)
    port = free_port()
    config = parse_config(
        RegistrationConfig,
        {
            "port": port,
            "base_url": f"http://127.0.0.1:{port}",
            "database": f"sqlite:///{tmp_path}/registration.db",
            "pki_dir": str(layout.pki),
            "rawdata": {"path": str(tmp_path / "rawdata.jsonl")},
            "directory": {
                "base_url": fhir_proxy_url(federation),
                "client_id": RD_PROVIDER,
                "client_secret_file": str(layout.provider_credentials),
                "ca_file": str(layout.ca_cert),
            },
            "federation": {"trust_anchors": [str(layout.ca_cert)]},
            "proxies": {"tokens": [PROXY_TOKEN]},
            "provisioning": {
                "domain_suffix": ".tim.test",
                "embedded": {
                    "url": control_url(federation),
                    "token_file": str(layout.control_token),
                    "timeout": 60.0,
                },
            },
        },
    )
    async with open_context(config) as ctx:
        runner = web.AppRunner(create_app(ctx), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with httpx.AsyncClient(base_url=config.public_base(), timeout=60) as client:
            try:
                yield ctx, config.public_base(), client
            finally:
                await runner.cleanup()


async def _listed(ctx: RegistrationContext, client: httpx.AsyncClient) -> list[str]:
    await ctx.federation.refresh()
    served = await client.get("/federation", headers={"Authorization": f"Bearer {PROXY_TOKEN}"})
    assert served.status_code == 200
    payload = orjson.loads(jwt.b64url_decode(served.content.split(b".")[1].decode()))
    return [entry["domain"] for entry in payload["domainList"]]


async def test_af_10060_end_to_end_with_real_synapse(
    federation: TimkitConfig, rd: tuple[RegistrationContext, str, httpx.AsyncClient]
) -> None:
    ctx, _, client = rd
    service = federation.messenger_services[0]
    assert service.domain == DOMAINS[0]
    _, token = make_admin(ctx, "admin", telematik_id(service), service.organisation)
    auth = {"Authorization": f"Bearer {token}"}
    assert NEW not in await _listed(ctx, client)

    response = await client.post("/api/v1/services", json={"domain": NEW}, headers=auth)
    assert response.status_code == 202, response.text

    async def state(wanted: str) -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/api/v1/services/{NEW}", headers=auth)).json()
        assert body["state"] not in ("failed", "rolling_back"), body
        return body if body["state"] == wanted else None

    active = await async_wait_until(lambda: state("active"), "service active", timeout=180)
    async with async_client(Layout(federation.data_dir).ca_cert) as https:
        health = await https.get(active["client_url"] + "/health")
    assert health.status_code == 200  # ML-123649: a real Synapse serves the new domain
    assert NEW in await _listed(ctx, client)  # ML-123650 and served to the proxies

    response = await client.delete(f"/api/v1/services/{NEW}", headers=auth)
    assert response.status_code == 202
    await async_wait_until(lambda: state("deleted"), "service deleted", timeout=120)
    assert NEW not in await _listed(ctx, client)
    assert await ctx.provisioner.backend.status(NEW) is None
