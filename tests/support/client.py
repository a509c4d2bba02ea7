"""timkit.client actors of a running local federation (real login through the proxies)."""

from __future__ import annotations

from pathlib import Path

from tests.support.federation import Federation
from timkit.client.options import ClientOptions
from timkit.client.profile import Profile
from timkit.client.session import TimClient

PASSWORD = "correct horse battery staple"


def client_options(federation: Federation) -> ClientOptions:
    """What ``timkit client`` derives from ``timkit status``: the FHIR-Proxy's URL, the
    local CA and every service's domain → client URL (there is no DNS for ``*.tim.test``)."""
    status = federation.status()
    hosts = {s["domain"]: s["client_url"] for s in status["services"]}
    return ClientOptions(
        directory_url=str(federation.component("fhir-proxy")["url"]),
        ca_file=Path(status["ca_cert"]),
        hosts=hosts,
        device_name="timkit tests",
    )


async def actor(
    federation: Federation,
    home: Path,
    domain: str,
    localpart: str,
    *,
    profile: str | None = None,
    options: ClientOptions | None = None,
) -> TimClient:
    """Create ``@localpart:domain`` (idempotent) and log it in on a new device whose profile
    lives under ``home``."""
    user_id = federation.add_user(domain, localpart, PASSWORD)
    return await TimClient.login(
        Profile(profile or localpart, home),
        options or client_options(federation),
        user_id,
        PASSWORD,
    )
