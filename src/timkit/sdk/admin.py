"""Synapse's admin API: shared-secret registration (``/_synapse/admin/v1/register``), and
listing, password reset and deactivation of accounts with a server admin's token."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from timkit.core.errors import Codes, TimkitError
from timkit.sdk.errors import raise_for_matrix_error

REGISTER_PATH = "/_synapse/admin/v1/register"


@dataclass(frozen=True)
class Registration:
    """Outcome of :func:`register_user`.

    Attributes:
        user_id: the full MXID.
        created: ``False`` when the user already existed.
        access_token: a fresh access token for a newly created user, else ``None``.
    """

    user_id: str
    created: bool
    access_token: str | None


def registration_mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    """HMAC-SHA1 over ``nonce\\0user\\0password\\0admin|notadmin``, as Synapse expects."""
    role = "admin" if admin else "notadmin"
    message = b"\x00".join(part.encode() for part in (nonce, user, password, role))
    return hmac.new(secret.encode(), message, hashlib.sha1).hexdigest()


async def register_user(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    server_name: str,
    shared_secret: str,
    localpart: str,
    password: str,
    admin: bool = False,
) -> Registration:
    """Create ``@localpart:server_name`` via shared-secret registration.

    Args:
        client: HTTP client trusting the homeserver's certificate.
        base_url: the homeserver's client URL.
        server_name: the homeserver's server name (to name an existing user).
        shared_secret: Synapse's ``registration_shared_secret``.
        localpart: the user's localpart.
        password: the user's password.
        admin: whether the user becomes a server admin.

    Returns:
        The registration; ``created=False`` if the user already existed.

    Raises:
        TimkitError: with the homeserver's errcode for any other failure.
    """
    url = base_url.rstrip("/") + REGISTER_PATH
    nonce_response = await client.get(url)
    raise_for_matrix_error(nonce_response)
    nonce = nonce_response.json()["nonce"]
    body = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "admin": admin,
        "mac": registration_mac(shared_secret, nonce, localpart, password, admin),
    }
    response = await client.post(url, json=body)
    try:
        raise_for_matrix_error(response)
    except TimkitError as exc:
        if exc.errcode == Codes.USER_IN_USE:
            return Registration(f"@{localpart}:{server_name}", created=False, access_token=None)
        raise
    data = response.json()
    return Registration(data["user_id"], created=True, access_token=data.get("access_token"))


@dataclass(frozen=True)
class UserEntry:
    """One account as Synapse's admin API lists it.

    Attributes:
        user_id: the full MXID.
        display_name: the profile name, or None.
        admin: whether the account is a server admin.
        deactivated: whether the account is deactivated.
    """

    user_id: str
    display_name: str | None
    admin: bool
    deactivated: bool


def _bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def list_users(
    client: httpx.AsyncClient, base_url: str, access_token: str, *, deactivated: bool = False
) -> list[UserEntry]:
    """Every local account (``GET /_synapse/admin/v2/users``, all pages), guests excluded.

    Args:
        access_token: a server admin's access token.
        deactivated: include deactivated accounts.

    Raises:
        TimkitError: with the homeserver's errcode.
    """
    url = base_url.rstrip("/") + "/_synapse/admin/v2/users"
    params: dict[str, str | int] = {"guests": "false", "limit": 500}
    if deactivated:
        params["deactivated"] = "true"
    users: list[UserEntry] = []
    while True:
        response = await client.get(url, params=params, headers=_bearer(access_token))
        raise_for_matrix_error(response)
        page = response.json()
        users += [_entry(u) for u in page.get("users", [])]
        if not page.get("next_token"):
            return users
        params["from"] = str(page["next_token"])


async def reset_password(
    client: httpx.AsyncClient, base_url: str, access_token: str, user_id: str, password: str
) -> None:
    """Set ``user_id``'s password (its devices stay logged in).

    Raises:
        TimkitError: with the homeserver's errcode (404 ``M_NOT_FOUND`` for no such user).
    """
    url = f"{base_url.rstrip('/')}/_synapse/admin/v1/reset_password/{quote(user_id, safe='')}"
    response = await client.post(
        url,
        json={"new_password": password, "logout_devices": False},
        headers=_bearer(access_token),
    )
    raise_for_matrix_error(response)


async def deactivate_user(
    client: httpx.AsyncClient, base_url: str, access_token: str, user_id: str
) -> None:
    """Deactivate ``user_id`` for good and erase its profile (GDPR erasure); the MXID can
    never be registered again.

    Raises:
        TimkitError: with the homeserver's errcode (404 ``M_NOT_FOUND`` for no such user).
    """
    url = f"{base_url.rstrip('/')}/_synapse/admin/v1/deactivate/{quote(user_id, safe='')}"
    response = await client.post(url, json={"erase": True}, headers=_bearer(access_token))
    raise_for_matrix_error(response)


async def get_user(
    client: httpx.AsyncClient, base_url: str, access_token: str, user_id: str
) -> UserEntry:
    """One account (``GET /_synapse/admin/v2/users/{user_id}``).

    Raises:
        TimkitError: with the homeserver's errcode (404 ``M_NOT_FOUND`` for no such user).
    """
    url = f"{base_url.rstrip('/')}/_synapse/admin/v2/users/{quote(user_id, safe='')}"
    response = await client.get(url, headers=_bearer(access_token))
    raise_for_matrix_error(response)
    return _entry(response.json())


def _entry(user: dict[str, object]) -> UserEntry:
    name = user.get("displayname")
    return UserEntry(
        user_id=str(user["name"]),
        display_name=name if isinstance(name, str) else None,
        admin=bool(user.get("admin")),
        deactivated=bool(user.get("deactivated")),
    )
