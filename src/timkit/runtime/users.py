"""Users of the local federation's homeservers: ``timkit user add|list|remove``,
``timkit push subscribe``."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from timkit.core.errors import Codes, TimkitError
from timkit.core.files import write_private
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
from timkit.sdk import admin as admin_api
from timkit.sdk.admin import register_user
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


SERVICE_ADMIN = "timkit-admin"
"""Localpart of the server admin ``timkit user`` signs in as for Synapse's admin API (made
once per service with a random password, kept in ``services/<domain>/synapse-admin.json``)."""


@dataclass(frozen=True)
class UserAdded:
    """Outcome of :func:`add_user`.

    Attributes:
        user_id: the full MXID.
        created: the account is new.
        password_reset: it existed with another password, which was replaced.
        access_token: a fresh access token of a new account (shared-secret registration
            logs it in), else None.
    """

    user_id: str
    created: bool
    password_reset: bool = False
    access_token: str | None = None


@dataclass(frozen=True)
class _Local:
    """One provisioned service as the CLI reaches it on this machine."""

    domain: str
    client_url: str
    synapse_url: str
    shared_secret: str
    admin_file: Path


def _local(config: TimkitConfig, domain: str) -> _Local:
    """The provisioned service ``domain`` with its shared secret.

    Raises:
        TimkitError: 404 for an unknown domain, 503 for a service never started.
    """
    layout = Layout(config.data_dir)
    service = _service(config, domain)
    home = layout.service_dir(domain)
    try:
        secret = secret_path(home / "synapse", "registration_shared_secret").read_text("utf-8")
    except FileNotFoundError:
        raise TimkitError(
            503, Codes.UNKNOWN, f"{domain} has never been started; run 'timkit up' first"
        ) from None
    return _Local(
        domain=domain,
        client_url=endpoints(config, service).client_url,
        synapse_url=f"http://{config.runtime.bind}:{service.homeserver_port}",
        shared_secret=secret.strip(),
        admin_file=home / "synapse-admin.json",
    )


def _unreachable(domain: str) -> TimkitError:
    return TimkitError(503, Codes.UNKNOWN, f"{domain} is not reachable; is the federation up?")


async def _logout(client: httpx.AsyncClient, base_url: str, access_token: str) -> None:
    response = await client.post(
        base_url + "/_matrix/client/v3/logout",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    raise_for_matrix_error(response)


@asynccontextmanager
async def _admin_session(client: httpx.AsyncClient, local: _Local) -> AsyncIterator[str]:
    """A server admin's access token on ``local``'s Synapse (loopback), logged out after.

    The admin account :data:`SERVICE_ADMIN` is registered on first use with a random
    password stored 0600 beside the service's files.
    """
    try:
        stored = json.loads(local.admin_file.read_text("utf-8"))
        user_id, password = str(stored["user_id"]), str(stored["password"])
    except (ValueError, KeyError, TypeError):
        raise TimkitError(
            500,
            Codes.UNKNOWN,
            f"{local.admin_file} is unreadable; restore it or remove it and "
            f"the account {SERVICE_ADMIN}",
        ) from None
    except FileNotFoundError:
        password = secrets.token_urlsafe(24)
        registration = await register_user(
            client,
            local.synapse_url,
            server_name=local.domain,
            shared_secret=local.shared_secret,
            localpart=SERVICE_ADMIN,
            password=password,
            admin=True,
        )
        if not registration.created:
            raise TimkitError(
                409,
                Codes.USER_IN_USE,
                f"{registration.user_id} exists but {local.admin_file} is gone; "
                "remove the account or restore the file",
            ) from None
        user_id = registration.user_id
        write_private(local.admin_file, json.dumps({"user_id": user_id, "password": password}))
    token = await login_password(client, local.synapse_url, user_id, password)
    try:
        yield token
    finally:
        await _logout(client, local.synapse_url, token)


async def add_user(
    config: TimkitConfig,
    domain: str,
    localpart: str,
    password: str,
    *,
    admin: bool = False,
    reset_password: bool = False,
) -> UserAdded:
    """Register ``@localpart:domain`` with the service's shared secret.

    An existing account is left as it is when ``password`` is its password; with another
    password it is an error, unless ``reset_password`` (then the password is replaced
    through Synapse's admin API).

    Raises:
        TimkitError: 404 for an unknown domain; 409 ``M_USER_IN_USE`` for an existing account
            with another password (naming ``--reset-password``) or a deactivated one; the
            homeserver's errcode otherwise.
    """
    local = _local(config, domain)
    async with async_client(Layout(config.data_dir).ca_cert, timeout=30.0) as client:
        try:
            registration = await register_user(
                client,
                local.client_url,
                server_name=domain,
                shared_secret=local.shared_secret,
                localpart=localpart,
                password=password,
                admin=admin,
            )
            if registration.created:
                return UserAdded(
                    registration.user_id, created=True, access_token=registration.access_token
                )
            user_id = registration.user_id
            try:
                token = await login_password(client, local.synapse_url, user_id, password)
            except TimkitError as e:
                if e.errcode not in (Codes.FORBIDDEN, Codes.USER_DEACTIVATED):
                    raise
            else:
                await _logout(client, local.synapse_url, token)
                return UserAdded(user_id, created=False)
            async with _admin_session(client, local) as admin_token:
                account = await admin_api.get_user(client, local.synapse_url, admin_token, user_id)
                if account.deactivated:
                    raise TimkitError(
                        409, Codes.USER_IN_USE, f"{user_id} was removed and cannot be used again"
                    )
                if not reset_password:
                    raise TimkitError(
                        409,
                        Codes.USER_IN_USE,
                        f"{user_id} exists with another password; add --reset-password to "
                        "set this one",
                    )
                await admin_api.reset_password(
                    client, local.synapse_url, admin_token, user_id, password
                )
            return UserAdded(user_id, created=False, password_reset=True)
        except httpx.ConnectError:
            raise _unreachable(domain) from None


async def list_users(
    config: TimkitConfig, domain: str, *, deactivated: bool = False
) -> list[admin_api.UserEntry]:
    """The accounts of ``domain``'s homeserver (the service admin included, flagged admin).

    Raises:
        TimkitError: 404 for an unknown domain, 503 when it is not reachable.
    """
    local = _local(config, domain)
    async with async_client(Layout(config.data_dir).ca_cert, timeout=30.0) as client:
        try:
            async with _admin_session(client, local) as token:
                return await admin_api.list_users(
                    client, local.synapse_url, token, deactivated=deactivated
                )
        except httpx.ConnectError:
            raise _unreachable(domain) from None


async def remove_user(config: TimkitConfig, domain: str, localpart: str) -> str:
    """Deactivate ``@localpart:domain`` for good (profile erased); returns the MXID.

    Raises:
        TimkitError: 404 for an unknown domain or user, 400 for the service admin itself.
    """
    if localpart == SERVICE_ADMIN:
        raise TimkitError(
            400, Codes.INVALID_PARAM, f"{SERVICE_ADMIN} is the account timkit user works with"
        )
    local = _local(config, domain)
    user_id = f"@{localpart}:{domain}"
    async with async_client(Layout(config.data_dir).ca_cert, timeout=30.0) as client:
        try:
            async with _admin_session(client, local) as token:
                try:
                    await admin_api.deactivate_user(client, local.synapse_url, token, user_id)
                except TimkitError as e:
                    if e.status == 404:
                        raise TimkitError(404, Codes.NOT_FOUND, f"no user {user_id}") from None
                    raise
        except httpx.ConnectError:
            raise _unreachable(domain) from None
    return user_id


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
