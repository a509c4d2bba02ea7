"""timkit.client actors of a running local federation (real login through the proxies)."""

from __future__ import annotations

from pathlib import Path

from tests.support.federation import Federation
from tests.support.users import PASSWORD
from timkit.client.options import ClientOptions
from timkit.client.profile import Profile
from timkit.client.session import TimClient
from timkit.runtime import actors
from timkit.runtime.config import load_config


def client_options(federation: Federation) -> ClientOptions:
    """What ``timkit client`` uses for the running ``federation`` (:mod:`timkit.runtime.actors`)."""
    return actors.client_options(load_config(federation.config), device_name="timkit tests")


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
