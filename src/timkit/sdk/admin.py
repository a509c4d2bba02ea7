"""Synapse's shared-secret registration (``/_synapse/admin/v1/register``)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

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
