"""Client-side push set-up: log in and register an HTTP pusher (Matrix C-S ``/pushers``).

A TI-M client registers its device at the provider's Push-Gateway by asking its homeserver
to create a pusher (``POST /_matrix/client/v3/pushers/set``, ``kind: http``). timkit's
clients use ``format: event_id_only`` (gematik's design: only ids reach the push service;
the app fetches and decrypts the event itself).
"""

from __future__ import annotations

from typing import Any

import httpx

from timkit.sdk.errors import raise_for_matrix_error

LOGIN_PATH = "/_matrix/client/v3/login"
PUSHERS_PATH = "/_matrix/client/v3/pushers"
EVENT_ID_ONLY = "event_id_only"


async def login_password(client: httpx.AsyncClient, base_url: str, user: str, password: str) -> str:
    """Log ``user`` (localpart or MXID) in with ``password``; returns the access token.

    Raises:
        TimkitError: with the homeserver's errcode (``M_FORBIDDEN`` for a wrong password).
    """
    response = await client.post(
        base_url.rstrip("/") + LOGIN_PATH,
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
            "initial_device_display_name": "timkit push",
        },
    )
    raise_for_matrix_error(response)
    return str(response.json()["access_token"])


async def set_pusher(
    client: httpx.AsyncClient,
    base_url: str,
    access_token: str,
    *,
    app_id: str,
    pushkey: str,
    gateway_url: str,
    data: dict[str, Any] | None = None,
    device_display_name: str = "timkit",
    app_display_name: str = "timkit",
    lang: str = "de",
) -> None:
    """Create (or replace) the HTTP pusher ``(app_id, pushkey)`` of the logged-in user.

    Args:
        gateway_url: the Push-Gateway's notify URL (``…/_matrix/push/v1/notify``).
        data: extra pusher data the gateway needs (WebPush: ``endpoint``, ``auth``).

    Raises:
        TimkitError: with the homeserver's errcode.
    """
    body = {
        "kind": "http",
        "app_id": app_id,
        "pushkey": pushkey,
        "app_display_name": app_display_name,
        "device_display_name": device_display_name,
        "lang": lang,
        "append": False,
        "data": {**(data or {}), "url": gateway_url, "format": EVENT_ID_ONLY},
    }
    response = await client.post(
        base_url.rstrip("/") + PUSHERS_PATH + "/set",
        json=body,
        headers={"Authorization": f"Bearer {access_token}"},
    )
    raise_for_matrix_error(response)


async def get_pushers(
    client: httpx.AsyncClient, base_url: str, access_token: str
) -> list[dict[str, Any]]:
    """The logged-in user's pushers (``GET /pushers``)."""
    response = await client.get(
        base_url.rstrip("/") + PUSHERS_PATH,
        headers={"Authorization": f"Bearer {access_token}"},
    )
    raise_for_matrix_error(response)
    return list(response.json().get("pushers", []))
