"""Put the local federation's demo domains into the federation list, the way a provider does.

The local run is one TI-M provider, ``timkit-demo``, registered at the local FHIR-Proxy
(the operator step ``timkit directory provider add``). Once every component is healthy, it
registers each Messenger-Service's domain through the real provider API: OAuth ``/token``
→ ``/ti-provider-authenticate`` → ``POST /tim-provider-services/federation``. The
Registrierungs-Dienst takes this over when it joins the local run.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from timkit.core.errors import TimkitError
from timkit.core.http import async_client
from timkit.directory.fhirproxy.service import open_database
from timkit.directory.fhirproxy.storage.providers import ProviderStore
from timkit.runtime.config import TimkitConfig
from timkit.runtime.demo import telematik_id
from timkit.runtime.layout import Layout
from timkit.runtime.plan import FHIR_PROXY_KIND, fhir_proxy_database, fhir_proxy_url

DEMO_PROVIDER = "timkit-demo"


@dataclass(frozen=True)
class Credentials:
    """OAuth client credentials of a provider at the FHIR-Proxy."""

    client_id: str
    client_secret: str


def credentials_file(config: TimkitConfig) -> Path:
    """Where the demo provider's credentials are kept (mode 0600)."""
    return Layout(config.data_dir).root / FHIR_PROXY_KIND / "demo-provider.json"


def ensure_demo_provider(config: TimkitConfig) -> Credentials:
    """Register the demo provider in the proxy database once; return its credentials."""
    path = credentials_file(config)
    if path.exists():
        stored = json.loads(path.read_text("utf-8"))
        return Credentials(stored["client_id"], stored["client_secret"])
    db = open_database(fhir_proxy_database(config))
    try:
        _, secret = ProviderStore(db).add(DEMO_PROVIDER, "timkit local federation")
    finally:
        db.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"client_id": DEMO_PROVIDER, "client_secret": secret}, fh)
    return Credentials(DEMO_PROVIDER, secret)


async def _register(config: TimkitConfig, credentials: Credentials) -> list[str]:
    base = fhir_proxy_url(config)
    async with async_client(Layout(config.data_dir).ca_cert) as client:
        response = await client.post(
            f"{base}/token",
            data={"grant_type": "client_credentials"},
            auth=(credentials.client_id, credentials.client_secret),
        )
        _check(response, "/token")
        ti_token = response.json()["access_token"]
        response = await client.get(
            f"{base}/ti-provider-authenticate", headers={"Authorization": f"Bearer {ti_token}"}
        )
        _check(response, "/ti-provider-authenticate")
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
        added = []
        for service in config.messenger_services:
            domain = {
                "domain": service.domain,
                "telematikID": telematik_id(service),
                "isInsurance": False,
            }
            response = await client.post(
                f"{base}/tim-provider-services/federation", json=domain, headers=headers
            )
            if response.status_code == 409:
                continue
            _check(response, "/tim-provider-services/federation")
            added.append(service.domain)
        return added


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        raise TimkitError(
            502, "TIMKIT_RUNTIME", f"{what} answered {response.status_code}: {response.text}"
        )


def register_demo_domains(config: TimkitConfig) -> list[str]:
    """Register every Messenger-Service's domain for the demo provider; return those added.

    Domains already registered are left alone, so this is safe on every ``timkit up``.
    """
    return asyncio.run(_register(config, ensure_demo_provider(config)))
