"""Users of the local federation's homeservers: ``timkit user add``, ``timkit push subscribe``."""

from __future__ import annotations

import httpx

from timkit.core.errors import Codes, TimkitError
from timkit.core.http import async_client
from timkit.homeserver.synapse import secret_path
from timkit.runtime.backend import read_records
from timkit.runtime.config import TimkitConfig
from timkit.runtime.layout import Layout
from timkit.runtime.plan import ServiceRecord, endpoints
from timkit.runtime.push_chain import (
    NOTIFY_PATH,
    WEBPUSH_APP,
    gateway_url,
    receiver_url,
    vapid_public_key,
)
from timkit.sdk.admin import Registration, register_user
from timkit.sdk.errors import raise_for_matrix_error
from timkit.sdk.push import login_password, set_pusher


def _service(config: TimkitConfig, domain: str) -> ServiceRecord:
    """The provisioned service ``domain``.

    Raises:
        TimkitError: 404 naming the known domains.
    """
    records = read_records(Layout(config.data_dir))
    service = next((s for s in records if s.domain == domain), None)
    if service is None:
        known = ", ".join(s.domain for s in records) or "none; run 'timkit up' first"
        raise TimkitError(404, Codes.NOT_FOUND, f"no Messenger-Service {domain!r} (known: {known})")
    return service


async def add_user(
    config: TimkitConfig, domain: str, localpart: str, password: str, *, admin: bool = False
) -> Registration:
    """Register ``@localpart:domain`` with the service's shared secret.

    The service must have been provisioned (its record under ``services/<domain>/``).

    Raises:
        TimkitError: 404 for an unknown domain; the homeserver's errcode otherwise.
    """
    layout = Layout(config.data_dir)
    service = _service(config, domain)
    secret_file = secret_path(layout.service_dir(domain) / "synapse", "registration_shared_secret")
    try:
        secret = secret_file.read_text("utf-8").strip()
    except FileNotFoundError:
        raise TimkitError(
            503, Codes.UNKNOWN, f"{domain} has never been started; run 'timkit up' first"
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
                503, Codes.UNKNOWN, f"{domain} is not reachable; is the federation up?"
            ) from None


async def subscribe_user(
    config: TimkitConfig, domain: str, localpart: str, password: str
) -> dict[str, str]:
    """Give ``@localpart:domain`` a WebPush device at the local push receiver.

    Logs the user in, creates a WebPush subscription at the receiver (pinned to the
    gateway's VAPID key) and registers it as an ``event_id_only`` pusher at the Push-Gateway,
    as a TI-M client would. Its pushes then show up in ``timkit push tail``.

    Returns:
        ``user_id``, ``subscription`` (the receiver's id, the ``--target`` of ``tail``) and
        ``endpoint``.

    Raises:
        TimkitError: unknown domain, wrong password, or the receiver/homeserver unreachable.
    """
    layout = Layout(config.data_dir)
    client_url = endpoints(config, _service(config, domain)).client_url
    async with async_client(layout.ca_cert, timeout=30.0) as client:
        try:
            token = await login_password(client, client_url, localpart, password)
            response = await client.post(
                receiver_url(config) + "/api/webpush/subscriptions",
                json={
                    "application_server_key": vapid_public_key(layout),
                    "label": f"@{localpart}:{domain}",
                },
            )
            raise_for_matrix_error(response)
            subscription = response.json()
            await set_pusher(
                client,
                client_url,
                token,
                app_id=WEBPUSH_APP,
                pushkey=subscription["keys"]["p256dh"],
                gateway_url=gateway_url(config) + NOTIFY_PATH,
                data={"endpoint": subscription["endpoint"], "auth": subscription["keys"]["auth"]},
            )
        except httpx.ConnectError as exc:
            raise TimkitError(
                503,
                Codes.UNKNOWN,
                f"cannot reach {exc.request.url.host}:{exc.request.url.port}; "
                "is the federation up?",
            ) from None
    return {
        "user_id": f"@{localpart}:{domain}",
        "subscription": str(subscription["id"]),
        "endpoint": str(subscription["endpoint"]),
    }
