"""Create users on the local federation's homeservers (``timkit user add``)."""

from __future__ import annotations

import httpx

from timkit.core.errors import TimkitError
from timkit.core.http import async_client
from timkit.homeserver.synapse import secret_path
from timkit.runtime.backend import read_records
from timkit.runtime.config import TimkitConfig
from timkit.runtime.layout import Layout
from timkit.runtime.plan import endpoints
from timkit.sdk.admin import Registration, register_user


async def add_user(
    config: TimkitConfig, domain: str, localpart: str, password: str, *, admin: bool = False
) -> Registration:
    """Register ``@localpart:domain`` with the service's shared secret.

    The service must have been provisioned (its record under ``services/<domain>/``).

    Raises:
        TimkitError: 404 for an unknown domain; the homeserver's errcode otherwise.
    """
    layout = Layout(config.data_dir)
    records = read_records(layout)
    service = next((s for s in records if s.domain == domain), None)
    if service is None:
        known = ", ".join(s.domain for s in records) or "none; run 'timkit up' first"
        raise TimkitError(404, "M_NOT_FOUND", f"no Messenger-Service {domain!r} (known: {known})")
    secret_file = secret_path(layout.service_dir(domain) / "synapse", "registration_shared_secret")
    try:
        secret = secret_file.read_text("utf-8").strip()
    except FileNotFoundError:
        raise TimkitError(
            503, "M_UNKNOWN", f"{domain} has never been started; run 'timkit up' first"
        ) from None
    async with async_client(layout.ca_cert, timeout=30.0) as client:
        try:
            return await register_user(
                client,
                endpoints(config, service).client_url,
                server_name=domain,
                shared_secret=secret,
                localpart=localpart,
                password=password,
                admin=admin,
            )
        except httpx.ConnectError:
            raise TimkitError(
                503, "M_UNKNOWN", f"{domain} is not reachable; is the federation up?"
            ) from None
