"""Apple Push Notification service: HTTP/2 with token (``.p8``, ES256) authentication.

Each device gets ``POST {endpoint}/3/device/<hex token>`` on one shared HTTP/2 connection
pool, authorised by a provider token (ES256 JWT, header ``{alg, kid}``, claims ``{iss, iat}``)
that is reused for :data:`TOKEN_REUSE` seconds: APNs refuses tokens older than an hour and
updates more often than every 20 minutes. The payload carries ids, never content; the alert
has ``mutable-content`` so the app's notification service extension fetches and decrypts the
event (gematik's "event id only" design)::

    {"aps": {"alert": {"loc-key": "Notification"}, "mutable-content": 1, "badge": <unread>},
     "event_id": ..., "room_id": ..., "unread_count": ..., "missed_calls": ...}

A badge-only update (no ``event_id``) is ``{"aps": {"badge": n}}`` with push type ``alert``
(Apple: "alert" covers alerts, badges and sounds; ``background`` pushes must not carry a
badge). With neither event nor counts it is a ``background`` push (``content-available``,
priority 5).

Outcomes (Apple's ``reason``):

==============================================================  ==========================
410 (``Unregistered``, ``ExpiredToken``)                        :class:`PushkeyRejected`
400 ``BadDeviceToken``, ``DeviceTokenNotForTopic``              :class:`PushkeyRejected`
a pushkey that is neither hex nor base64                        :class:`PushkeyRejected`
403 ``ExpiredProviderToken``                                    new provider token,
                                                                :class:`TemporaryPushError`
429 (``TooManyRequests`` …), 5xx, time-out, connection failure  :class:`TemporaryPushError`
any other 4xx                                                   :class:`PermanentPushError`
==============================================================  ==========================
"""

from __future__ import annotations

import base64
import binascii
import string
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import httpx
import orjson
from jwcrypto import jwk

from timkit.core import jwt
from timkit.core.errors import ConfigError
from timkit.push.backends.base import (
    Backend,
    PermanentPushError,
    PushError,
    PushkeyRejected,
    TemporaryPushError,
    service_client,
)
from timkit.push.config import ApnsApp, OutboundConfig
from timkit.push.notify_request import Device, Notification

TOKEN_REUSE = 50 * 60
"""Seconds one provider token is used (APNs: not older than 60, not renewed within 20 min)."""

EXPIRATION = 24 * 3600
"""Seconds APNs keeps an undeliverable notification (``apns-expiration``)."""

ALERT_LOC_KEY = "Notification"
"""``aps.alert.loc-key``: the app's localised fallback text if its extension cannot decrypt."""

REJECTING_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic"})

_HEX = frozenset(string.hexdigits)


class ProviderToken:
    """The APNs provider token: an ES256 JWT renewed every :data:`TOKEN_REUSE` seconds.

    Args:
        key: the ``.p8`` EC P-256 private key.
        key_id: its id (``kid``).
        team_id: the developer team (``iss``).
        clock: Unix time (tests move it).
    """

    def __init__(
        self, key: jwk.JWK, key_id: str, team_id: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self._clock = clock
        self._token = ""
        self._issued = 0.0

    def current(self) -> str:
        """The token to send now (signed anew when it is :data:`TOKEN_REUSE` seconds old)."""
        now = self._clock()
        if not self._token or now - self._issued >= TOKEN_REUSE:
            self._token = jwt.sign(
                {"iss": self._team_id, "iat": int(now)}, self._key, typ=None, kid=self._key_id
            )
            self._issued = now
        return self._token

    def expire(self, token: str) -> None:
        """APNs called ``token`` expired: sign a new one next time (unless already renewed)."""
        if token == self._token:
            self._token = ""


class ApnsBackend(Backend):
    """Delivers to APNs over one shared HTTP/2 client with a reused provider token.

    Args:
        app_id: the app served.
        config: the app's ``[apps.<app_id>]`` table.
        token: the provider token source.
        client: an HTTP/2 client (closed by :meth:`close`).
    """

    kind = "apns"

    def __init__(
        self, app_id: str, config: ApnsApp, token: ProviderToken, client: httpx.AsyncClient
    ) -> None:
        super().__init__(app_id)
        self.config = config
        self._token = token
        self._client = client
        self._base = f"{config.endpoint.rstrip('/')}/3/device/"

    @classmethod
    async def create(cls, app_id: str, config: ApnsApp, outbound: OutboundConfig) -> Self:
        """Load the ``.p8`` key and open the HTTP/2 client.

        Raises:
            ConfigError: the key is unreadable or not an EC P-256 private key, or the CA
                file cannot be read.
        """
        key = load_signing_key(config.key_file)
        client = service_client(config.ca_file, config.delivery)
        return cls(app_id, config, ProviderToken(key, config.key_id, config.team_id), client)

    async def send(self, notification: Notification, device: Device) -> None:
        """Send one notification to the device token (see the module docstring for outcomes)."""
        device_token = device_token_hex(device.pushkey)
        payload, push_type, priority = apns_payload(notification)
        token = self._token.current()
        headers = {
            "authorization": f"bearer {token}",
            "apns-topic": self.config.topic,
            "apns-push-type": push_type,
            "apns-priority": priority,
            "apns-expiration": str(int(time.time()) + EXPIRATION),
            "content-type": "application/json",
        }
        try:
            response = await self._client.post(
                self._base + device_token, content=orjson.dumps(payload), headers=headers
            )
        except httpx.TimeoutException as e:
            raise TemporaryPushError("APNs timed out") from e
        except httpx.TransportError as e:
            raise TemporaryPushError(f"APNs unreachable: {type(e).__name__}") from e
        if response.status_code == 200:
            return
        reason = _reason(response)
        if response.status_code == 403 and reason == "ExpiredProviderToken":
            self._token.expire(token)
        raise apns_outcome(response.status_code, reason)

    async def close(self) -> None:
        """Close the HTTP/2 client."""
        await self._client.aclose()


def load_signing_key(path: Path) -> jwk.JWK:
    """The ``.p8`` (PEM PKCS#8) EC P-256 private key at ``path``.

    Raises:
        ConfigError: unreadable, not PEM, or not a P-256 private key.
    """
    try:
        key = jwt.key_from_pem(path.read_bytes())
    except OSError as e:
        raise ConfigError(f"cannot read APNs key: {e}", source=str(path)) from e
    except (ValueError, TypeError) as e:
        raise ConfigError("APNs key is not a PEM private key", source=str(path)) from e
    if key.get("kty") != "EC" or key.get("crv") != "P-256" or not key.has_private:
        raise ConfigError("APNs key is not an EC P-256 private key", source=str(path))
    return key


def device_token_hex(pushkey: str) -> str:
    """The device token as lower-case hex.

    Hex pushkeys are used as they are; base64 ones (Sygnal's convention, which Element iOS
    registers) are converted.

    Raises:
        PushkeyRejected: neither hex nor base64 of at least 8 bytes.
    """
    if len(pushkey) % 2 == 0 and len(pushkey) >= 16 and set(pushkey) <= _HEX:
        return pushkey.lower()
    try:
        raw = base64.b64decode(pushkey, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) < 8:
        raise PushkeyRejected("APNs pushkey is not a hex or base64 device token")
    return raw.hex()


def apns_payload(notification: Notification) -> tuple[dict[str, Any], str, str]:
    """The JSON payload, ``apns-push-type`` and ``apns-priority`` for ``notification``."""
    aps: dict[str, Any] = {}
    payload: dict[str, Any] = {"aps": aps}
    counts = notification.counts
    if notification.event_id:
        aps["alert"] = {"loc-key": ALERT_LOC_KEY}
        aps["mutable-content"] = 1
        payload["event_id"] = notification.event_id
    if notification.room_id:
        payload["room_id"] = notification.room_id
    if counts.unread is not None:
        aps["badge"] = counts.unread
        payload["unread_count"] = counts.unread
    if counts.missed_calls is not None:
        payload["missed_calls"] = counts.missed_calls
    if not aps:
        aps["content-available"] = 1
        return payload, "background", "5"
    return payload, "alert", "10" if notification.prio == "high" else "5"


def apns_outcome(status: int, reason: str) -> PushError:
    """The backend outcome of a non-200 APNs response."""
    described = f"APNs answered {status}" + (f" {reason}" if reason else "")
    if status == 410 or (status == 400 and reason in REJECTING_REASONS):
        return PushkeyRejected(described)
    if status == 429 or status >= 500 or (status == 403 and reason == "ExpiredProviderToken"):
        return TemporaryPushError(described)
    return PermanentPushError(described)


def _reason(response: httpx.Response) -> str:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    reason = document.get("reason") if isinstance(document, dict) else None
    return reason if isinstance(reason, str) else ""
